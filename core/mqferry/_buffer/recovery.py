"""Opening a disk queue's directory: what survives, and an account of everything that did not.

A healthy queue has segments whose sequence numbers follow on from one another, and an ``acked``
mark between the first record on disk and one past the last. Anything else is damage, and
opening never stops at it: an unreadable file is set aside as ``<name>.damaged``, a damaged
record or a missing stretch of sequence numbers is counted as lost and passed over by the mark,
and a mark that cannot be read or is out of range means "nothing acknowledged" (replaying is
safer than skipping). Each finding is logged at ERROR with what was lost, by sequence numbers,
and listed in :attr:`Opened.problems`. Only a directory that cannot be used at all raises
:class:`DiskBufferError`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mqferry._buffer.errors import DiskBufferError
from mqferry._buffer.segment import SUFFIX, Parsed, parse

log = logging.getLogger(__name__)

MARK = "acked"


@dataclass
class Opened:
    """What a queue directory holds, once damage is accounted for."""

    #: the first sequence number not acknowledged, after clamping and passing lost records
    acked: int = 0
    next_seq: int = 0
    segments: list[int] = field(default_factory=list)
    #: the unacknowledged records, in order
    records: list[tuple[int, bytes]] = field(default_factory=list)
    #: lost stretches at or after ``acked``, start -> end (exclusive): the mark jumps them
    holes: dict[int, int] = field(default_factory=dict)
    #: one line per problem found (also logged at ERROR)
    problems: list[str] = field(default_factory=list)
    #: unacknowledged records lost, counted by sequence numbers
    lost: int = 0
    #: the mark on disk differs from ``acked`` and should be written
    mark_moved: bool = False


def segment_path(directory: Path, first: int) -> Path:
    return directory / f"{first:020d}{SUFFIX}"


def segment_files(directory: Path) -> list[int]:
    """The first sequence numbers of the segment files in ``directory``, in no order.

    Raises:
        OSError: the directory cannot be listed.
    """
    return _firsts(p.name for p in directory.iterdir())


def _firsts(names: Iterable[str]) -> list[int]:
    """The first sequence numbers that segment file ``names`` stand for (others are left out)."""
    return [int(n[: -len(SUFFIX)]) for n in names
            if n.endswith(SUFFIX) and n[: -len(SUFFIX)].isdigit()]


def open_directory(directory: Path) -> Opened:
    """Read a queue directory (created if missing), repairing and reporting what is damaged.

    Raises:
        DiskBufferError: the directory cannot be created, listed or written to.
    """
    firsts = _usable_directory(directory)
    found = Opened()
    parsed: dict[int, Parsed] = {}
    for first in firsts:
        path = segment_path(directory, first)
        try:
            data = path.read_bytes()
        except OSError as exc:
            _report(found, f"segment {path.name} cannot be read ({exc.strerror or exc}); "
                           f"{_set_aside(path)}", directory)
            continue
        parsed[first] = parse(data, last=first == firsts[-1])
    found.segments = sorted(parsed)
    found.next_seq = _next_seq(directory, parsed, firsts)
    mark = _read_mark(found, directory)
    if not firsts and mark is not None and mark > 0:
        # no segment file at all beside a mark: a queue whose records were all acknowledged
        # and then cleared (DiskQueue.close(clear=True)); it numbers on from the mark
        found.next_seq = found.acked = mark
        log.info("disk buffer %s: empty, every record acknowledged (the next is %d)", directory,
                 mark)
        return found
    _clamp_mark(found, directory, mark)
    _account(found, directory, parsed)
    found.mark_moved = mark is None or found.acked != mark
    return found


def has_segments(directory: Path) -> bool:
    """Whether ``directory`` holds segment files; ``False`` when it does not exist.

    Raises:
        OSError: the directory cannot be read.
    """
    try:
        return bool(segment_files(directory))
    except FileNotFoundError:
        return False


def count_pending(directory: Path) -> int:
    """How many intact records a queue directory holds past its mark, reading only: nothing is
    created, repaired or locked (a report about a directory no queue has open). 0 when it
    cannot be read."""
    try:
        firsts = sorted(segment_files(directory))
    except OSError:
        return 0
    try:
        text = (directory / MARK).read_text().strip()
    except (OSError, UnicodeDecodeError):  # none yet, or unreadable: opening replays them all
        text = "0"
    mark = int(text) if text.isdigit() else 0
    count = 0
    for first in firsts:
        try:
            data = segment_path(directory, first).read_bytes()
        except OSError:
            continue
        seg = parse(data, last=first == firsts[-1])
        count += sum(1 for k, body in enumerate(seg.slots)
                     if body is not None and first + k >= mark)
    return count


def check_directory(directory: Path) -> None:
    """Create ``directory`` if missing and check that a queue can use it (nothing is read).

    Raises:
        DiskBufferError: the directory cannot be created, listed or written to.
    """
    _usable_directory(directory)


def _usable_directory(directory: Path) -> list[int]:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        names = [p.name for p in directory.iterdir()]
    except FileExistsError as exc:
        raise DiskBufferError(directory, "cannot be used: it exists and is not a directory",
                              errno=exc.errno) from exc
    except OSError as exc:
        raise DiskBufferError(directory, f"cannot be used: {exc.strerror or exc}",
                              errno=exc.errno) from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise DiskBufferError(directory, "cannot be used: the directory is not writable")
    return sorted(_firsts(names))


def _next_seq(directory: Path, parsed: dict[int, Parsed], firsts: list[int]) -> int:
    nxt = 0
    if parsed:
        last = max(parsed)
        nxt = last + len(parsed[last].slots)
    # a set-aside segment that could not be renamed still holds its name: start past it
    for first in firsts:
        if first not in parsed and segment_path(directory, first).exists():
            nxt = max(nxt, first + 1)
    return nxt


def _read_mark(found: Opened, directory: Path) -> int | None:
    path = directory / MARK
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return 0  # nothing acknowledged yet: the mark is written on the first ack
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        _report(found, f"ack mark {MARK} cannot be read ({reason}); treating nothing as "
                       f"acknowledged and replaying everything; {_set_aside(path)}", directory)
        return None
    try:
        return int(text)
    except ValueError:
        _report(found, f"ack mark {MARK} holds {text[:40]!r}, not a sequence number; treating "
                       "nothing as acknowledged and replaying everything", directory)
        return None


def _clamp_mark(found: Opened, directory: Path, mark: int | None) -> None:
    first = found.segments[0] if found.segments else found.next_seq
    found.acked = first
    if mark is None:
        return
    if mark > found.next_seq or mark < 0:
        where = "past the last record on disk" if mark > 0 else "negative"
        _report(found, f"ack mark {mark} is {where} (records on disk: {first}.."
                       f"{found.next_seq - 1}); treating nothing as acknowledged and replaying "
                       "them all, since replaying is safer than skipping", directory)
    elif mark < first:
        found.lost += first - mark
        _report(found, f"ack mark {mark} is before the first segment, which starts at {first}: "
                       f"{first - mark} unacknowledged records lost (sequence numbers "
                       f"{mark}..{first - 1}; a segment file is missing)", directory)
    else:
        found.acked = mark


def _account(found: Opened, directory: Path, parsed: dict[int, Parsed]) -> None:
    """Collect the records past the mark; count gaps and damaged records as lost."""
    firsts = found.segments
    for i, first in enumerate(firsts):
        seg, path = parsed[first], segment_path(directory, first)
        nxt = firsts[i + 1] if i + 1 < len(firsts) else found.next_seq
        if first + len(seg.slots) > nxt:
            # Only intact records are lost here: a damaged one past the next segment's start is
            # a write that failed and was not undone, and its record was appended again there.
            extra = [(first + k, first + k + 1) for k in range(nxt - first, len(seg.slots))
                     if seg.slots[k] is not None]
            del seg.slots[nxt - first :]
            _lose(found, directory, extra,
                  f"{path.name} holds records past the start of the next segment, at {nxt}")
        if seg.torn_at is not None:
            what = ("a run of zero bytes (the file was extended, its data never written)"
                    if seg.torn_zeros else "a record cut short")
            log.warning("disk buffer %s: cutting a torn tail at the end of %s (byte %d): %s, "
                        "from a write never acknowledged", directory, path.name, seg.torn_at,
                        what)
            _truncate(path, seg.torn_at)
        damaged = [(pos, k) for pos, k in seg.damaged if k < len(seg.slots)]
        lost = [(first + k, first + k + 1) for _, k in damaged if seg.slots[k] is None]
        if len(lost) < len(damaged):
            log.warning("disk buffer %s: %d records of %s with a damaged length were recovered "
                        "(their checksum matches)", directory, len(damaged) - len(lost),
                        path.name)
        if lost:
            at = ", ".join(str(pos) for pos, k in damaged[:5] if seg.slots[k] is None)
            _lose(found, directory, lost, f"{path.name} has damaged records (at bytes {at}); "
                                          "the intact records after them are kept")
        for k, body in enumerate(seg.slots):
            if body is not None and first + k >= found.acked:
                found.records.append((first + k, body))
        end = first + len(seg.slots)
        if end < nxt:
            _lose(found, directory, [(end, nxt)],
                  f"no segment holds {end}..{nxt - 1}, between {path.name} and the next "
                  "(a segment file is missing, empty or was set aside)")
    while found.acked in found.holes:
        found.acked = found.holes.pop(found.acked)


def _lose(found: Opened, directory: Path, spans: list[tuple[int, int]], what: str) -> None:
    """Count the unacknowledged sequence numbers in ``spans`` as lost; the mark will pass them."""
    gone = [(max(a, found.acked), b) for a, b in spans if b > found.acked]
    for a, b in gone:
        found.holes[a] = b
    count = sum(b - a for a, b in gone)
    if not spans:
        return
    if not count:
        log.warning("disk buffer %s: %s; those records were all acknowledged, nothing is lost",
                    directory, what)
        return
    found.lost += count
    seqs = ", ".join(str(a) if b == a + 1 else f"{a}..{b - 1}" for a, b in gone[:5])
    _report(found, f"{what}: {count} unacknowledged records lost (sequence numbers {seqs}"
                   f"{', ...' if len(gone) > 5 else ''})", directory)


def _report(found: Opened, problem: str, directory: Path) -> None:
    found.problems.append(problem)
    log.error("disk buffer %s: %s", directory, problem)


def _set_aside(path: Path) -> str:
    aside = path.with_name(path.name + ".damaged")
    try:
        path.rename(aside)
    except OSError as exc:
        return f"it could not be set aside ({exc.strerror or exc}) and is skipped"
    return f"set aside as {aside.name}"


def _truncate(path: Path, size: int) -> None:
    try:
        with path.open("r+b") as f:
            f.truncate(size)
    except OSError as exc:
        log.error("disk buffer %s: cannot cut the torn record off %s (%s); new records go to "
                  "a new segment anyway", path.parent, path.name, exc.strerror or exc)

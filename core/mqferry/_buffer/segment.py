"""The record format of a segment file, and reading one back when it may be damaged.

A record on disk is ``length (u32) | crc32 (u32) | bytes``; sequence numbers are not stored,
a record's is its segment's first plus its position. So when a record is damaged, reading
resynchronises on the next offset from which intact records run to the end of the file, and
counts the damaged stretch as one lost record (the fewest it can be; a damaged length whose
body still matches its crc is recovered instead). What is really missing beyond that shows as
a gap before the next segment's first sequence number, which the opener counts.

No record is empty: a length of zero is never written (:func:`frame` refuses it), so that a run
of zero bytes never reads as records. Some filesystems leave one at the end of a file after a
crash (its size was extended, its data never written). At the end of the segment being written
it is a torn tail, cut off like a write cut short; anywhere else it is damage like any other.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

HEADER = struct.Struct("<II")
_NONZERO = re.compile(rb"[^\x00]")
#: bytes of a record's length field, the first of its header
_LENGTH_BYTES = 4
SUFFIX = ".seg"


def frame(data: bytes) -> bytes:
    """``data`` as it is written to a segment.

    Raises:
        ValueError: ``data`` is empty: it would be indistinguishable from zeros on disk.
    """
    if not data:
        raise ValueError("an empty record cannot be stored: on disk it would read as a run of "
                         "zero bytes, which is what a crash leaves")
    return HEADER.pack(len(data), zlib.crc32(data)) + data


@dataclass
class Parsed:
    """What a segment holds: one slot per sequence number, ``None`` for a lost record."""

    slots: list[bytes | None] = field(default_factory=list)
    #: byte offset of a torn tail at the very end (a write cut short), to truncate at
    torn_at: int | None = None
    #: the torn tail is nothing but zeros (the file was extended, its data never written)
    torn_zeros: bool = False
    #: damaged records: (byte offset, slot); the slot is ``None`` unless it could be recovered
    damaged: list[tuple[int, int]] = field(default_factory=list)


def parse(data: bytes, *, last: bool) -> Parsed:
    """Read every record of a segment; ``last``: it is the segment being written to."""
    out = Parsed()
    bad: set[int] = set()
    pos = 0
    while pos < len(data):
        body = _record_at(data, pos)
        if body is not None:
            out.slots.append(body)
            pos += HEADER.size + len(body)
            continue
        if data[-1] == 0 and data.count(0, pos) == len(data) - pos:  # zeros to the end
            if last:
                out.torn_at, out.torn_zeros = pos, True
            else:
                out.damaged.append((pos, len(out.slots)))
                out.slots.append(None)
            break
        nxt = _resync(data, pos, bad)
        end = len(data) if nxt is None else nxt
        salvaged = _salvage(data, pos, end)
        if salvaged is None and nxt is None and last and _runs_past_end(data, pos):
            out.torn_at = pos
            break
        out.damaged.append((pos, len(out.slots)))
        out.slots.append(salvaged)
        if nxt is None:
            break
        pos = nxt
    return out


def _record_at(data: bytes, pos: int) -> bytes | None:
    if pos + HEADER.size > len(data):
        return None
    length, crc = HEADER.unpack_from(data, pos)
    end = pos + HEADER.size + length
    if end > len(data):
        return None
    if length == 0:  # never written: zeros, not a record (crc32(b"") is 0)
        return None
    body = data[pos + HEADER.size : end]
    return body if zlib.crc32(body) == crc else None


def _runs_past_end(data: bytes, pos: int) -> bool:
    if pos + HEADER.size > len(data):
        return True
    length: int = HEADER.unpack_from(data, pos)[0]
    return pos + HEADER.size + length > len(data)


def _salvage(data: bytes, pos: int, end: int) -> bytes | None:
    """The body between ``pos`` and ``end`` if only the length field was damaged."""
    if pos + HEADER.size > end:
        return None
    _, crc = HEADER.unpack_from(data, pos)
    body = data[pos + HEADER.size : end]
    return body if body and zlib.crc32(body) == crc else None


def _resync(data: bytes, pos: int, bad: set[int]) -> int | None:
    """The first offset after ``pos`` from which intact records run to the end, if any.

    The damaged record's own length is tried first (the usual case: its body or crc was hit).
    ``bad`` remembers offsets known not to lead to the end, so that a long stretch of records
    followed by damage costs linear time, not quadratic.
    """
    if pos + HEADER.size <= len(data):
        length: int = HEADER.unpack_from(data, pos)[0]
        q = pos + HEADER.size + length
        if q < len(data) and _runs_to_end(data, q, bad):
            return q
    for q in _starts(data, pos + 1):
        if _runs_to_end(data, q, bad):
            return q
    return None


def _starts(data: bytes, pos: int) -> Iterator[int]:
    """The offsets from ``pos`` on where a record could start.

    A run of zeros is passed over in one step: a record starting inside it would have a length
    of zero, which is never written. Only its last 3 offsets are tried: their length field
    reaches the first byte after the run.
    """
    end = len(data)
    q = pos
    while q < end:
        if data[q] == 0:
            found = _NONZERO.search(data, q)
            if found is None:
                return
            q = max(q, found.start() - (_LENGTH_BYTES - 1))
        yield q
        q += 1


def _runs_to_end(data: bytes, pos: int, bad: set[int]) -> bool:
    seen = []
    while pos < len(data):
        if pos in bad:
            break
        body = _record_at(data, pos)
        if body is None:
            break
        seen.append(pos)
        pos += HEADER.size + len(body)
    else:
        return True
    if seen:  # a failed start alone is never reached again: the scan moves on past it
        bad.update(seen)
        bad.add(pos)
    return False

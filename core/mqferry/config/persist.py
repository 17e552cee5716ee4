"""Write a config mapping back to its YAML file atomically (write a sibling, fsync, rename).

A reader (or a crash) sees either the old file or the new one, never half of one. Comments in the
file are not kept: the mapping is the source of truth once the API has changed it.

:class:`ConfigWriter` does the writing for a running instance: off the event loop, and at most once
per interval however many changes arrive, always ending with the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mqferry.config.secrets import clear_text_secrets

log = logging.getLogger(__name__)

__all__ = ["ConfigWriter", "Fragments", "file_digest", "write_config"]

# libyaml's emitter is many times faster than the pure-Python one on a large file; the output is
# the same YAML (same representer, so the same refusals of unknown types).
_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_MAX_RETRY_DELAY = 30.0


def file_digest(path: str | Path) -> str | None:
    """The SHA-256 of the file's bytes, or ``None`` when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _dump(data: Any) -> str:
    text: str = yaml.dump(_plain(data), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                          default_flow_style=False)
    return text


class Fragments:
    """Renders a config mapping as YAML, reusing the text of entries that did not change.

    The entries of each top-level section (``rules.<id>``, ``connectors.<type>``) are rendered
    one by one and kept with the object they were rendered from: as long as a later mapping holds
    the very same object (mappings are replaced, never edited), its text is reused. Writing a file
    of 10,000 rules after one changed renders one rule. The text is the one a whole-mapping dump
    gives: in block style each entry of a mapping is emitted on its own.
    """

    def __init__(self) -> None:
        self._texts: dict[tuple[str, str], tuple[Any, str]] = {}

    def render(self, data: Mapping[str, Any]) -> str:
        """``data`` as YAML."""
        if not data:
            return _dump(data)
        out: list[str] = []
        keep: dict[tuple[str, str], tuple[Any, str]] = {}
        for section, value in data.items():
            name = str(section)
            texts = None
            if isinstance(value, Mapping) and value and name.isidentifier():
                texts = self._section(name, value, keep)
            if texts is None:
                out.append(_dump({name: value}))
            else:
                out.append(f"{name}:\n")
                out += texts
        self._texts = keep  # holding the objects keeps their identities from being reused
        return "".join(out)

    def _section(self, name: str, value: Mapping[Any, Any],
                 keep: dict[tuple[str, str], tuple[Any, str]]) -> list[str] | None:
        slots = [((name, str(k)), v) for k, v in value.items()]
        missing = [(slot, v) for slot, v in slots
                   if (c := self._texts.get(slot)) is None or c[0] is not v]
        if missing:
            # One dump for all of them, a document each, cut apart at the document markers:
            # every line of an entry is indented, so a marker line is never part of one.
            marker = f"---\n{name}:\n"
            text: str = yaml.dump_all([_plain({name: {slot[1]: v}}) for slot, v in missing],
                                      Dumper=_Dumper, explicit_start=True, sort_keys=False,
                                      allow_unicode=True, default_flow_style=False)
            parts = text.split(marker)
            if len(parts) != len(missing) + 1 or parts[0]:
                return None  # a name YAML must quote: render the section whole
            for (slot, v), part in zip(missing, parts[1:], strict=True):
                keep[slot] = (v, part)
        out = []
        for slot, _ in slots:
            entry = keep.get(slot) or self._texts[slot]
            keep[slot] = entry
            out.append(entry[1])
        return out


def write_config(path: str | Path, data: Mapping[str, Any], *,
                 fragments: Fragments | None = None) -> str:
    """Replace ``path`` with ``data`` as YAML, atomically; keep the file's permissions.

    When ``data`` holds a clear-text secret (a password rather than a ``${ENV}`` or ``file://``
    reference), group and others lose every permission: the file becomes ``0600``. The mode is
    set on the new file before it takes the old one's name, so the secret is never readable.

    Args:
        path: the file.
        data: the configuration mapping.
        fragments: reuse the text of entries rendered by an earlier write.

    Returns:
        The SHA-256 of what was written.

    Raises:
        OSError: the directory is not writable, the disk is full ...; the old file is untouched.
    """
    target = Path(path)
    text = (fragments.render(data) if fragments is not None else _dump(data)).encode()
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600  # the file may hold secrets
    if any(True for _ in clear_text_secrets(data)):
        # A password given through the API is stored as given: no one but the owner may read it.
        mode &= 0o7700
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.chmod(mode)
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    # The rename is durable only once the directory entry is on disk.
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    log.info("configuration written to %s", target)
    return hashlib.sha256(text).hexdigest()


def _plain(value: Any) -> Any:
    # safe_dump refuses subclasses and tuples; hand it plain dicts and lists.
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class ConfigWriter:
    """Writes the latest config mapping to its file in a worker thread, coalescing bursts.

    :meth:`write_soon` keeps the mapping and returns at once. A background task writes it; changes
    that arrive while a write runs, or within ``interval`` after it, are written together by the
    next write, so a burst of API calls costs a few writes of the whole file, not one each, and
    the last change is always written. A failed write (disk full) is retried with back-off.

    The file is never written over an edit made by someone else: before each write its contents
    are compared with what was last loaded or written, and on a difference the write is skipped,
    logged and :attr:`conflict` says why until :meth:`loaded` records a reload.

    Mappings handed over must not be changed afterwards (the caller replaces, never edits).

    Args:
        path: the config file.
        interval: the shortest time between two writes, in seconds.
    """

    def __init__(self, path: str | Path, *, interval: float = 0.5) -> None:
        self.path = Path(path)
        self.interval = interval
        #: Why writing stopped: the file was edited by someone else since it was loaded.
        self.conflict: str | None = None
        self._digest = file_digest(self.path)
        self._stat = _stat(self.path)
        self._pending: Mapping[str, Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._writing = False
        self._lock = threading.Lock()  # one write at a time, in the order they started
        self._fragments = Fragments()

    @property
    def idle(self) -> bool:
        """Nothing is waiting to be written and no write is running."""
        return self._pending is None and not self._writing

    def loaded(self, digest: str | None) -> None:
        """Record that the file was (re)loaded with contents ``digest``; clears a conflict."""
        with self._lock:
            self._digest, self._stat, self.conflict = digest, _stat(self.path), None

    def maybe_edited(self) -> bool:
        """Whether the file's size, time or inode changed since the last load or write.

        Cheap (one ``stat``); :meth:`edited` confirms by contents. Meaningful while :attr:`idle`.
        """
        return _stat(self.path) != self._stat

    def edited(self) -> bool:
        """Whether the file's contents changed since the last load or write (reads the file)."""
        with self._lock:
            if _stat(self.path) == self._stat:
                return False
            if file_digest(self.path) == self._digest:
                self._stat = _stat(self.path)  # touched, not edited: hash it only once
                return False
            return True

    def write_soon(self, data: Mapping[str, Any]) -> None:
        """Write ``data`` (replacing anything not yet written) without waiting for it."""
        self._pending = data
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="mqferry[config].write")

    async def flush(self) -> None:
        """Write what is pending now and return when it is on disk.

        Raises:
            OSError: the write failed; the mapping stays pending (and is retried later).
        """
        task, self._task = self._task, None
        if task is not None and not task.done():
            # Cancels a back-off sleep; a write running in its thread finishes, and the one
            # below waits for it on the lock, so the file ends with the latest mapping.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        data = self._pending
        if data is not None:
            await self._write_off_loop(data)
            if self._pending is data:
                self._pending = None

    async def _run(self) -> None:
        # Sleeping out the interval after each write, even the last of a burst, is what bounds
        # the rate: a change arriving then waits for the next write with whatever came with it.
        loop = asyncio.get_running_loop()
        delay = self.interval
        while (data := self._pending) is not None:
            started = loop.time()
            try:
                await self._write_off_loop(data)
            except OSError as exc:
                delay = min(max(delay * 2, 1.0), _MAX_RETRY_DELAY)
                log.error("cannot write the configuration to %s: %s; retrying in %.0fs",
                          self.path, exc.strerror or exc, delay)
            except Exception:  # the pending change must not be dropped with a dead task
                delay = min(max(delay * 2, 1.0), _MAX_RETRY_DELAY)
                log.exception("writing the configuration to %s failed; retrying in %.0fs",
                              self.path, delay)
            else:
                delay = self.interval
                if self._pending is data:
                    self._pending = None
            await asyncio.sleep(max(0.0, delay - (loop.time() - started)))

    async def _write_off_loop(self, data: Mapping[str, Any]) -> None:
        self._writing = True
        try:
            await asyncio.to_thread(self._write, data)
        finally:
            self._writing = False

    def _write(self, data: Mapping[str, Any]) -> None:
        with self._lock:
            if self.conflict is not None:
                return
            if _stat(self.path) != self._stat and file_digest(self.path) != self._digest:
                self.conflict = (f"{self.path} was edited since it was loaded: reload it first "
                                 "(mqferry config reload, or SIGHUP), then repeat the change")
                log.error("not writing the configuration: %s; the changes made through the API "
                          "since are applied but not saved", self.conflict)
                return
            self._digest = write_config(self.path, data, fragments=self._fragments)
            self._stat = _stat(self.path)

"""Write a config mapping back to its YAML file atomically (write a sibling, fsync, rename).

A reader (or a crash) sees either the old file or the new one, never half of one. The operator's
text is kept: only the entries that changed are written again, and within them only the changed
nodes (:mod:`mqferry._config.layout`); comments, key order, block SQL and ``${NAME}`` stay.

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
from typing import TYPE_CHECKING, Any

from mqferry._config.secrets import clear_text_secrets
from mqferry._tasks import Supervisor, describe

if TYPE_CHECKING:  # ruamel.yaml (2 MiB) is imported by the first write, not by every bridge
    from mqferry._config.layout import Layout

log = logging.getLogger(__name__)

__all__ = ["ConfigWriter", "file_digest", "render", "write_config", "write_text"]

_MAX_RETRY_DELAY = 30.0


def file_digest(path: str | Path) -> str | None:
    """The SHA-256 of the file's bytes, or ``None`` when it cannot be read."""
    try:
        return digest_of(Path(path).read_bytes())
    except OSError:
        return None


def digest_of(data: bytes) -> str:
    """The SHA-256 of a file's bytes already read, as :func:`file_digest` gives it."""
    return hashlib.sha256(data).hexdigest()


def _file_layout(path: Path) -> Layout | None:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return None
    from mqferry._config.layout import Layout

    return Layout.parse(text)


def render(data: Mapping[str, Any], layout: Layout | None) -> tuple[str, Layout | None]:
    """``data`` as the text of a file laid out as ``layout`` (fresh without one), and the
    layout of that text (``None`` after a fresh one: cut from the file when next needed)."""
    if layout is None:
        from mqferry._config.layout import fresh_text

        return fresh_text(data), None
    return layout.render(data)


def write_config(path: str | Path, data: Mapping[str, Any]) -> str:
    """Replace ``path`` with ``data`` as YAML, atomically; keep the file's permissions and text.

    What did not change keeps its text: comments, key order, quoting, block SQL and ``${NAME}``
    references (see :class:`~mqferry._config.layout.Layout`).

    When ``data`` holds a clear-text secret (a password rather than a ``${ENV}`` or ``file://``
    reference), group and others lose every permission: the file becomes ``0600``. The mode is
    set on the new file before it takes the old one's name, so the secret is never readable.

    Args:
        path: the file.
        data: the configuration mapping.

    Returns:
        The SHA-256 of what was written.

    Raises:
        OSError: the directory is not writable, the disk is full ...; the old file is untouched.
    """
    target = Path(path)
    return write_text(target, render(data, _file_layout(target))[0], data)


def write_text(target: Path, rendered: str, data: Mapping[str, Any]) -> str:
    """Replace ``target`` with ``rendered`` (the text of ``data``) as :func:`write_config` does.

    Returns:
        The SHA-256 of what was written.
    """
    text = rendered.encode()
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
        # Started on demand; the loop returns once nothing is pending. It catches its own
        # failures (a pending change must not be dropped), the supervisor any it missed.
        self._task = Supervisor("mqferry[config].write", self._run)
        #: Why the last write-back failed (``None``: it succeeded, or none was tried).
        self.last_error: str | None = None
        self._writing = False
        self._lock = threading.Lock()  # one write at a time, in the order they started
        self._layout: Layout | None = None  # of the file as last written; parsed on demand

    @property
    def idle(self) -> bool:
        """Nothing is waiting to be written and no write is running."""
        return self._pending is None and not self._writing

    def loaded(self, digest: str | None) -> None:
        """Record that the file was (re)loaded with contents ``digest``; clears a conflict."""
        with self._lock:
            self._digest, self._stat, self.conflict = digest, _stat(self.path), None
            self._layout = None

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
        self._task.start()

    async def flush(self) -> None:
        """Write what is pending now and return when it is on disk.

        Raises:
            OSError: the write failed; the mapping stays pending, and the background task
                goes on retrying it.
        """
        # Cancels a back-off sleep; a write running in its thread finishes, and the one below
        # waits for it on the lock, so the file ends with the latest mapping.
        await self._task.stop()
        data = self._pending
        if data is not None:
            try:
                await self._write_off_loop(data)
            except OSError as exc:
                self.last_error = f"cannot write {self.path}: {exc.strerror or exc}"
                self._task.start()  # the stop above ended the retries: the change stays due
                raise
            if self._pending is data:
                self._pending = None
                self.last_error = None

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
                self.last_error = f"cannot write {self.path}: {exc.strerror or exc}"
                delay = min(max(delay * 2, 1.0), _MAX_RETRY_DELAY)
                log.error("cannot write the configuration to %s: %s; retrying in %.0fs",
                          self.path, exc.strerror or exc, delay)
            except Exception as exc:  # the pending change must not be dropped with a dead task
                self.last_error = f"writing {self.path} failed: {describe(exc)}"
                delay = min(max(delay * 2, 1.0), _MAX_RETRY_DELAY)
                log.exception("writing the configuration to %s failed; retrying in %.0fs",
                              self.path, delay)
            else:
                delay = self.interval
                self.last_error = None
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
            layout = self._layout or _file_layout(self.path)
            text, self._layout = render(data, layout)
            self._digest = write_text(self.path, text, data)
            self._stat = _stat(self.path)

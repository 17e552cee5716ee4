"""The errors a disk buffer raises when it cannot be used or cannot write."""

from __future__ import annotations

from pathlib import Path

from mqferry._errors import MqferryError


class DiskBufferError(MqferryError, OSError):
    """A disk buffer's directory cannot be used, or an append could not be written.

    It is also an :class:`OSError` (it always comes from one, kept as ``__cause__``, whose
    ``errno`` it copies), so code that already handles I/O errors handles it too.

    Args:
        path: the directory or file concerned.
        reason: what went wrong and what it means for the records.
        errno: the ``errno`` of the underlying :class:`OSError`, if any.
    """

    def __init__(self, path: Path, reason: str, *, errno: int | None = None) -> None:
        super().__init__(f"disk buffer {path}: {reason}")
        self.path = path
        self.reason = reason
        self.errno = errno


class DiskBufferInUseError(DiskBufferError):
    """Another queue holds the directory's lock.

    In this process it is a queue not closed yet (an action being replaced whose stop overran,
    say): the directory is free once it closes, and its next owner may wait for that. In another
    process it is an operator's error: two instances given one ``data_dir``.

    Args:
        path: the directory.
        reason: who holds it and what that means.
        holder: the process id of the holder, if known.
        this_process: whether the holder is a queue of this process.
        errno: the ``errno`` of the refused ``flock``.
    """

    def __init__(self, path: Path, reason: str, *, holder: int | None, this_process: bool,
                 errno: int | None = None) -> None:
        super().__init__(path, reason, errno=errno)
        self.holder = holder
        self.this_process = this_process

"""The error a disk buffer raises when it cannot be used or cannot write."""

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

"""Buffers for actions: durable segment queues on disk (:class:`DiskQueue`)."""

from __future__ import annotations

from mqferry._buffer.disk import DiskQueue
from mqferry._buffer.errors import DiskBufferError, DiskBufferInUseError

__all__ = ["DiskBufferError", "DiskBufferInUseError", "DiskQueue"]

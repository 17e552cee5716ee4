"""Buffers for actions: durable segment queues on disk, and byte accounting for limits."""

from __future__ import annotations

from mqferry.buffer.disk import DiskQueue

__all__ = ["DiskQueue"]

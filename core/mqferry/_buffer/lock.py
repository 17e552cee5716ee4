"""One owner per disk queue directory: an exclusive ``flock`` on its ``lock`` file.

Two queues on one directory would hand out the same sequence numbers, read each other's
segments as damaged, and replay what the other sends. The lock is taken before the directory is
read and held until the queue is closed. ``flock`` locks belong to an open file, not a process,
so a second queue in the same process is refused as one in another process is; the kernel drops
the lock when its holder dies, so a crash never leaves a directory locked. The holder writes its
process id into the file, so that a refusal can say who holds it; the lock files this process
holds are also known here (by device and inode), so that a refusal says for certain whether the
holder is a queue of this process, one not closed yet, whose directory its next owner can wait
for.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from mqferry._buffer.errors import DiskBufferError, DiskBufferInUseError

LOCK = "lock"

#: the lock files this process holds, by (device, inode): a refusal tells by it whether the
#: holder is a queue of this process (the pid in the file only names a holder)
_held: set[tuple[int, int]] = set()


def lock_directory(directory: Path) -> int:
    """Take the exclusive lock of ``directory`` (which exists); the descriptor that holds it.

    Raises:
        DiskBufferInUseError: another queue holds it (the message names the holder's process).
        DiskBufferError: the lock file cannot be opened or locked.
    """
    path = directory / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise DiskBufferError(directory, f"cannot be locked: {exc.strerror or exc}",
                              errno=exc.errno) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _holder(fd)
        ours = _key(fd) in _held
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise DiskBufferError(directory, f"cannot be locked: {exc.strerror or exc}",
                                  errno=exc.errno) from exc
        if ours:
            raise DiskBufferInUseError(
                directory, f"is in use by this process ({os.getpid()}): the action it belonged "
                "to has not closed it", holder=os.getpid(), this_process=True,
                errno=exc.errno) from exc
        raise DiskBufferInUseError(
            directory, f"is in use by {_who(holder)}: one disk buffer has one owner; two "
            "mqferry instances need a data_dir each", holder=holder, this_process=False,
            errno=exc.errno) from exc
    _held.add(_key(fd))
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
    except OSError:
        pass  # only the message of a refusal uses it
    return fd


def unlock_directory(fd: int) -> None:
    """Release a lock taken by :func:`lock_directory`."""
    try:
        _held.discard(_key(fd))
    finally:
        os.close(fd)  # closing the file releases its flock


def _key(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _who(pid: int | None) -> str:
    # not this process's (see _held): a pid of ours in the file is stale
    if pid is None or pid == os.getpid():
        return "another process"
    return f"process {pid}"

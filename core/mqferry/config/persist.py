"""Write a config mapping back to its YAML file atomically (write a sibling, fsync, rename).

A reader (or a crash) sees either the old file or the new one, never half of one. Comments in the
file are not kept: the mapping is the source of truth once the API has changed it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

__all__ = ["file_digest", "write_config"]


def file_digest(path: str | Path) -> str | None:
    """The SHA-256 of the file's bytes, or ``None`` when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def write_config(path: str | Path, data: Mapping[str, Any]) -> str:
    """Replace ``path`` with ``data`` as YAML, atomically; keep the file's permissions.

    Returns:
        The SHA-256 of what was written.

    Raises:
        OSError: the directory is not writable, the disk is full ...; the old file is untouched.
    """
    target = Path(path)
    text = yaml.safe_dump(_plain(data), sort_keys=False, allow_unicode=True,
                          default_flow_style=False).encode()
    try:
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600  # the file may hold secrets
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

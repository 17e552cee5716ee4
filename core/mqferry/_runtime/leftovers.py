"""Records left in disk buffers that no running action sends: said, never deleted.

An action with a disk buffer says where it lives (``disk_directory``, see
:class:`~mqferry._types.Action`): ``<data_dir>/<type>/<name>``. Whatever is left there is sent by
the next action of that name to run, whatever its buffer mode. Until one runs, the records wait;
these warnings say so, with the directory and the count, when such an action is removed and when
the app starts with directories that belong to no configured action.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mqferry._buffer import DiskQueue

log = logging.getLogger(__name__)

__all__ = ["disk_directory", "warn_removed", "warn_unowned"]


def disk_directory(action: Any) -> Path | None:
    """The directory of ``action``'s disk buffer (its ``disk_directory``), if it has one."""
    found = getattr(action, "disk_directory", None)
    return found if isinstance(found, Path) else None


def warn_removed(cid: str, action: Any) -> None:
    """Warn when ``action``, stopped and removed, left records in its disk buffer."""
    directory = disk_directory(action)
    count = _count(directory) if directory is not None else 0
    if count:
        log.warning("action %s was removed with %d records in its disk buffer %s: they stay "
                    "there, and an action of that name sends them when it runs again", cid,
                    count, directory)


def warn_unowned(data_dir: Path, actions: Mapping[str, Any]) -> None:
    """Warn about each buffer directory below ``data_dir`` that holds records and belongs to
    none of ``actions`` (by their ``disk_directory``)."""
    owned = {d for a in actions.values() if (d := disk_directory(a)) is not None}
    for directory in _queue_directories(data_dir):
        if directory in owned:
            continue
        count = _count(directory)
        if count:
            log.warning("disk buffer %s holds %d records of %s:%s, which is not configured: "
                        "they stay there, and an action of that name sends them when it runs",
                        directory, count, directory.parent.name, directory.name)


def _queue_directories(data_dir: Path) -> Iterable[Path]:
    """``<data_dir>/<type>/<name>`` directories with segment files (unreadable ones skipped)."""
    try:
        kinds = sorted(p for p in data_dir.iterdir() if p.is_dir())
    except OSError:
        return
    for kind in kinds:
        try:
            names = sorted(p for p in kind.iterdir() if p.is_dir())
        except OSError:
            continue
        for directory in names:
            try:
                if DiskQueue.has_segments(directory):
                    yield directory
            except OSError:
                continue


def _count(directory: Path) -> int:
    """:meth:`DiskQueue.count`; a warning never stops a start or a change, whatever it meets."""
    try:
        return DiskQueue.count(directory)
    except Exception as exc:
        log.warning("disk buffer %s: cannot count the records it holds: %r", directory, exc)
        return 0

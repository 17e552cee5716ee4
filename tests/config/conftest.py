"""Fixtures of the config tests."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from mqferry._config import persist


class FullDisk:
    """The config file's writes fail with ENOSPC while :attr:`full` is true."""

    def __init__(self) -> None:
        self.full = True
        self._real = persist.write_text

    def __call__(self, path: Any, text: str, data: Any) -> str:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._real(path, text, data)


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> FullDisk:
    """Writes of config files fail as on a full disk until ``full_disk.full = False``."""
    disk = FullDisk()
    monkeypatch.setattr(persist, "write_text", disk)
    return disk

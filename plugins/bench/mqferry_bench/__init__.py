"""The benchmark harness behind ``mqferry bench``: load generators, verifiers and the tally.

Public surface: :class:`LoadSpec`, :class:`BenchRun` and :func:`run` (one run end to end), and the
payload codec (:func:`encode`, :func:`decode`). They are imported on first use, so that loading
the ``bench`` command plugin costs nothing when mqferry runs as a service.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BenchRun": "mqferry_bench.runner", "LoadSpec": "mqferry_bench.runner",
    "run": "mqferry_bench.runner", "Stamp": "mqferry_bench.payload",
    "decode": "mqferry_bench.payload", "encode": "mqferry_bench.payload",
}

__all__ = ["BenchRun", "LoadSpec", "Stamp", "decode", "encode", "run"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

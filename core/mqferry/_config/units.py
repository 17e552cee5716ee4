"""EMQX-style durations (``5s``, ``100ms``, ``infinity``) and sizes (``896KB``, ``10MB``)."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}


def parse_duration(value: Any, *, default_unit: str = "ms") -> float:
    """Seconds from ``"5s"``, ``"100ms"``, ``"1.5m"``, ``"infinity"`` or a bare number.

    A bare number is in ``default_unit`` (milliseconds, as EMQX's ``duration_ms``).

    Raises:
        ValueError: the value is not a duration; the message says what is accepted.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '5s' or '100ms', got {value!r}")
    if isinstance(value, int | float):
        return float(value) * _DURATION_UNITS[default_unit]
    if isinstance(value, str):
        if value.strip().lower() == "infinity":
            return math.inf
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[(m.group(2) or default_unit).lower()]
    raise ValueError(f"expected a duration such as '5s' or '100ms', got {value!r}")


def parse_size(value: Any) -> int:
    """Bytes from ``"896KB"``, ``"10MB"``, ``"1024"`` or a bare integer (1KB = 1024 bytes).

    Raises:
        ValueError: the value is not a size.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as '896KB' or '10MB', got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value}")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])
    raise ValueError(f"expected a size such as '896KB' or '10MB', got {value!r}")


def format_duration(seconds: float) -> str:
    """The shortest exact EMQX spelling of ``seconds``."""
    if math.isinf(seconds):
        return "infinity"
    ms = round(seconds * 1000)
    for unit, factor in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % factor == 0:
            return f"{ms // factor}{unit}"
    return f"{ms}ms"


def format_size(n: int) -> str:
    """The shortest exact EMQX spelling of ``n`` bytes."""
    for unit, factor in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


#: Seconds, written as ``"5s"`` (bare numbers are milliseconds).
Duration = Annotated[
    float, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)
]
#: Seconds, written as ``"5s"`` (bare numbers are seconds, as EMQX's ``duration_s``).
DurationS = Annotated[
    float,
    BeforeValidator(lambda v: parse_duration(v, default_unit="s")),
    PlainSerializer(format_duration, return_type=str),
]
#: Bytes, written as ``"896KB"``.
ByteSize = Annotated[
    int, BeforeValidator(parse_size), PlainSerializer(format_size, return_type=str)
]

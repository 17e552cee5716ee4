"""Helpers that shape values for data stores: ``mongo_date`` and ``map_to_redis_hset_args``."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from mqferry._rules.functions._args import BadArg, as_int, as_map, as_text

__all__ = ["FUNCTIONS"]

_UNITS = {"second": 1, "millisecond": 1_000, "microsecond": 1_000_000, "nanosecond": 10**9}


def mongo_date(timestamp: Any = None, unit: Any = "millisecond") -> str:
    """A MongoDB date for ``timestamp`` (now when omitted), written as ``ISODate("...")``."""
    if timestamp is None:
        ms = time.time_ns() // 1_000_000
    else:
        per_second = _UNITS.get(as_text(unit, "time unit"))
        if per_second is None:
            raise BadArg(f"unknown time unit {unit!r}: use one of {', '.join(_UNITS)}")
        ms = as_int(timestamp, "timestamp") * 1000 // per_second
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return f'ISODate("{when.strftime("%Y-%m-%dT%H:%M:%S")}.{ms % 1000:03d}Z")'


def _redis_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


def map_to_redis_hset_args(value: Any) -> list[str]:
    """``[field1, value1, field2, value2, ...]`` for a Redis ``HSET`` from a map.

    Values that are maps or lists are JSON-encoded; entries with an undefined value are left out.
    """
    out: list[str] = []
    for k, v in as_map(value).items():
        if v is None:
            continue
        out += [_redis_value(k), _redis_value(v)]
    return out


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "mongo_date": mongo_date,
    "map_to_redis_hset_args": map_to_redis_hset_args,
}

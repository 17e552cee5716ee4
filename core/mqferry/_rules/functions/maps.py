"""Map functions. ``map_get``/``map_put`` take a dotted key path; ``mget``/``mput`` one key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mqferry._rules.functions.conv import to_map
from mqferry._rules.paths import nested_get, nested_put

__all__ = ["FUNCTIONS"]


def _path(key: Any) -> list[Any]:
    return key.split(".") if isinstance(key, str) else [key]


def map_new() -> dict[str, Any]:
    """An empty map."""
    return {}


def map_get(key: Any, data: Any, default: Any = None) -> Any:
    """The value at dotted path ``key`` (``'a.b'``), or ``default``."""
    found = nested_get(to_map(data), _path(key))
    return default if found is None else found


def map_put(key: Any, value: Any, data: Any) -> Any:
    """A copy of the map with ``value`` at dotted path ``key``."""
    return nested_put(to_map(data), _path(key), value)


def mget(key: Any, data: Any, default: Any = None) -> Any:
    """The value under ``key`` (no path splitting), or ``default``."""
    found = to_map(data).get(key)
    return default if found is None else found


def mput(key: Any, value: Any, data: Any) -> dict[Any, Any]:
    """A copy of the map with ``value`` under ``key``."""
    out = dict(to_map(data))
    out[key] = value
    return out


def map_keys(data: Any) -> list[Any]:
    """The keys."""
    return list(to_map(data))


def map_values(data: Any) -> list[Any]:
    """The values."""
    return list(to_map(data).values())


def map_to_entries(data: Any) -> list[dict[str, Any]]:
    """The entries as ``[{"key": k, "value": v}, ...]``."""
    return [{"key": k, "value": v} for k, v in to_map(data).items()]


def map_size(data: Any) -> int:
    """The number of entries."""
    return len(to_map(data))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "map_new": map_new, "map_get": map_get, "map_put": map_put, "mget": mget, "mput": mput,
    "map_keys": map_keys, "map_values": map_values, "map_to_entries": map_to_entries,
    "map_size": map_size,
}

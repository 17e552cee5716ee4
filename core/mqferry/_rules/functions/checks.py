"""Type checks and null handling: ``is_int``, ``is_null``, ``coalesce`` and friends.

Undefined and JSON null are both ``None`` as values. ``is_null`` tells them apart for a path
argument (``is_null(payload.x)``): the compiler asks whether the path finds anything (see
``Compiler.presence_call``); ``is_null_var`` is true for both, as in EMQX.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from mqferry._rules import values
from mqferry._rules.functions._args import BadArg

__all__ = ["FUNCTIONS"]


def is_null(value: Any) -> bool:
    """Whether the value is undefined (for a path, JSON null is defined: see the module docs)."""
    return value is None


def is_not_null(value: Any) -> bool:
    """Whether the value is defined."""
    return value is not None


def is_null_var(value: Any) -> bool:
    """Whether the value is undefined or JSON null."""
    return value is None


def is_not_null_var(value: Any) -> bool:
    """Whether the value is neither undefined nor JSON null."""
    return value is not None


def is_empty(value: Any) -> bool:
    """Whether the value is an empty string, array or map.

    As in EMQX, a non-empty string is decoded as a JSON object (``is_empty('{}')`` is true,
    ``is_empty('{"a": 1}')`` false); any other value, undefined included, is an error.
    """
    if isinstance(value, list | dict):
        return not value
    if isinstance(value, str | bytes):
        if not value:
            return True
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError:
            decoded = None
        if type(decoded) is not dict:
            raise BadArg(f"is_empty: {values.to_str(value)[:60]!r} is neither empty nor a JSON "
                         "object")
        return not decoded
    raise BadArg(f"is_empty: expected a string, array or map, got {values.to_str(value)[:60]}")


def is_str(value: Any) -> bool:
    """Whether the value is a string (or binary)."""
    return isinstance(value, str | bytes)


def is_bool(value: Any) -> bool:
    """Whether the value is a boolean."""
    return type(value) is bool


def is_int(value: Any) -> bool:
    """Whether the value is an integer (booleans are not)."""
    return type(value) is int


def is_float(value: Any) -> bool:
    """Whether the value is a float (``2.0`` is, ``2`` is not)."""
    return type(value) is float


def is_num(value: Any) -> bool:
    """Whether the value is an integer or a float."""
    return type(value) in (int, float)


def is_map(value: Any) -> bool:
    """Whether the value is a map."""
    return type(value) is dict


def is_array(value: Any) -> bool:
    """Whether the value is an array."""
    return type(value) is list


def coalesce(*args: Any) -> Any:
    """The first defined value: ``coalesce(a, b)`` or ``coalesce([a, b, c])``."""
    candidates = args[0] if len(args) == 1 and type(args[0]) is list else args
    for value in candidates:
        if value is not None:
            return value
    return None


def coalesce_ne(*args: Any) -> Any:
    """The first value that is neither undefined nor empty (``''``)."""
    candidates = args[0] if len(args) == 1 and type(args[0]) is list else args
    for value in candidates:
        if value is not None and value not in ("", b""):
            return value
    return None


def null() -> None:
    """Undefined."""
    return


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "is_null": is_null,
    "is_null_var": is_null_var,
    "is_not_null": is_not_null,
    "is_not_null_var": is_not_null_var,
    "is_empty": is_empty,
    "is_str": is_str,
    "is_bool": is_bool,
    "is_int": is_int,
    "is_float": is_float,
    "is_num": is_num,
    "is_map": is_map,
    "is_array": is_array,
    "coalesce": coalesce,
    "coalesce_ne": coalesce_ne,
    "null": null,
}
ARITY: dict[str, tuple[int, int | None]] = {"coalesce": (1, 2), "coalesce_ne": (1, 2)}

"""Argument checks shared by the built-in functions (they raise, the caller reports)."""

from __future__ import annotations

from typing import Any, cast

from mqferry._errors import MqferryError

__all__ = [
    "MAX_RESULT_SIZE",
    "BadArg",
    "as_bytes",
    "as_int",
    "as_list",
    "as_map",
    "as_number",
    "as_text",
    "check_size",
    "describe_size",
]

#: The longest string or binary a built-in function builds from a small input: a decompressed
#: payload, a padded string, a ``sprintf`` width. Past it the call fails instead of allocating.
MAX_RESULT_SIZE = 16 * 1024 * 1024


class BadArg(MqferryError, TypeError):
    """A built-in function got an argument of the wrong type or value."""


def describe_size(size: int) -> str:
    """``size`` bytes for a message: ``16 MiB``, ``64 KiB`` or ``100 bytes``."""
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def check_size(size: int, what: str, limit: int = MAX_RESULT_SIZE) -> int:
    """``size`` when it is within ``limit``; otherwise a :class:`BadArg` naming ``what``."""
    if size > limit:
        raise BadArg(f"{what} {size} exceeds the limit of {describe_size(limit)}")
    return size


def as_text(value: Any, what: str = "string") -> str:
    """A string argument; booleans read as ``true``/``false`` (Erlang atoms), undefined fails."""
    t = type(value)
    if t is str:
        return cast(str, value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8")
    if t is bool:
        return "true" if value else "false"
    raise BadArg(f"expected a {what}, got {_kind(value)}")


def as_bytes(value: Any) -> bytes:
    """A binary argument: bytes as is, strings as UTF-8."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if type(value) is str:
        return value.encode("utf-8")
    raise BadArg(f"expected a binary, got {_kind(value)}")


def as_int(value: Any, what: str = "integer") -> int:
    """An integer argument (not a bool, not a float)."""
    if type(value) is int:
        return value
    raise BadArg(f"expected an {what}, got {_kind(value)}")


def as_number(value: Any) -> int | float:
    """A number argument (not a bool)."""
    if type(value) in (int, float):
        return cast(int | float, value)
    raise BadArg(f"expected a number, got {_kind(value)}")


def as_list(value: Any) -> list[Any]:
    """A list argument."""
    if type(value) is list:
        return value
    raise BadArg(f"expected an array, got {_kind(value)}")


def as_map(value: Any) -> dict[Any, Any]:
    """A map argument."""
    if type(value) is dict:
        return value
    raise BadArg(f"expected a map, got {_kind(value)}")


def _kind(value: Any) -> str:
    if value is None:
        return "undefined"
    return {bool: "boolean", int: "integer", float: "float", str: "string", bytes: "binary",
            dict: "map", list: "array"}.get(type(value), type(value).__name__)

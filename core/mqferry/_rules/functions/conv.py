"""Type conversion functions: ``str``, ``int``, ``float``, ``bool``, ``map`` and hex strings."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from mqferry._rules import values
from mqferry._rules.functions._args import BadArg, as_int, as_number, as_text
from mqferry._rules.functions.bits import as_bits

__all__ = ["FUNCTIONS", "to_map"]

_ERL_INT = re.compile(r"[+-]?\d+\Z")
_ERL_FLOAT = re.compile(r"[+-]?\d+\.\d+(?:[eE][+-]?\d+)?\Z")
#: Most decimals ``float`` and ``float2str`` write: Erlang's ``float_to_binary`` limit, which also
#: keeps a caller's count from building a string of any length.
MAX_DECIMALS = 253


def _decimals(value: Any) -> int:
    places = as_int(value)
    if places > MAX_DECIMALS:
        raise BadArg(f"{places} decimals exceeds the limit of {MAX_DECIMALS}")
    return places


def str_(value: Any) -> str:
    """Any value as a string (floats with up to 10 decimals, maps and lists as JSON)."""
    return values.to_str(value)


def str_utf16_le(value: Any) -> bytes:
    """A value as a UTF-16 little-endian binary."""
    return values.to_str(value).encode("utf-16-le")


def bool_(value: Any) -> bool:
    """``true``/``false``, ``'true'``/``'false'``, or 1/0 (also 1.0/0.0) as a boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str | bytes):
        text = as_text(value)
        if text in ("true", "false"):
            return text == "true"
    elif values.is_number(value) and value in (0, 1):
        return bool(value == 1)
    raise BadArg(f"cannot convert {values.to_repr(value)} to a boolean")


def int_(value: Any) -> int:
    """A value as an integer: strings parse (``'1.9'`` floors to 1), floats floor, bools 1/0."""
    t = type(value)
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, int):
        return value
    if t is float:
        return int(value // 1)
    if isinstance(value, str | bytes):
        text = as_text(value)
        if _ERL_INT.match(text):
            return int(text)
        if _ERL_FLOAT.match(text):
            return int(float(text) // 1)
    raise BadArg(f"cannot convert {values.to_repr(value)} to an integer")


def float_(value: Any, decimals: Any = None) -> float:
    """A value as a float; with ``decimals``, rounded to that many decimal places."""
    t = type(value)
    if t is float:
        result: float = value
    elif t is int:
        result = float(value)
    elif isinstance(value, str | bytes):
        text = as_text(value)
        if not (_ERL_FLOAT.match(text) or _ERL_INT.match(text)):
            raise BadArg(f"cannot convert {text!r} to a float")
        result = float(text)
    else:
        raise BadArg(f"cannot convert {values.to_repr(value)} to a float")
    if decimals is None:
        return result
    places = _decimals(decimals)
    if places <= 0:
        raise BadArg("decimals must be positive")
    return float(f"{result:.{places}f}")


def float2str(value: Any, precision: Any) -> str:
    """A float as a string with at most ``precision`` decimals, trailing zeros dropped."""
    return values.format_float(float(as_number(value)), _decimals(precision))


def to_map(value: Any) -> dict[Any, Any]:
    """A map from a map, a JSON object string, or a list of ``[key, value]`` pairs."""
    if type(value) is dict:
        return value
    if isinstance(value, str | bytes):
        try:
            decoded = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise BadArg("not a JSON object") from exc
        if type(decoded) is dict:
            return decoded
        raise BadArg("not a JSON object")
    if type(value) is list and all(type(p) is list and len(p) == 2 for p in value):
        return {p[0]: p[1] for p in value}
    raise BadArg(f"cannot convert {values.to_repr(value)} to a map")


def bin2hexstr(data: Any, prefix: Any = None) -> str:
    """A binary as an upper-case hex string, after ``prefix`` when one is given.

    A bit string that is not whole bytes is padded with zero bits in front to whole bytes; when
    four or more were added, the first hex digit (all padding) is dropped, as in EMQX: 4 bits
    give one digit, 12 bits three.
    """
    value, size = as_bits(data)
    pad = -size % 8
    digits = f"{value:0{(size + pad) // 4}X}" if size else ""
    if pad >= 4:
        digits = digits[1:]
    return digits if prefix is None else as_text(prefix) + digits


def hexstr2bin(text: Any, prefix: Any = None) -> bytes:
    """A hex string (either case) back to its bytes; an odd length reads as if led by ``0``.

    With ``prefix``, the string must start with it (``hexstr2bin('0x0102', '0x')``).
    """
    raw = as_text(text)
    if prefix is not None:
        lead = as_text(prefix)
        if not raw.startswith(lead):
            raise BadArg(f"{raw!r} does not start with the prefix {lead!r}")
        raw = raw[len(lead):]
    if len(raw) % 2:
        raw = "0" + raw
    # fromhex alone would skip whitespace between bytes; EMQX takes hex digits only
    if not raw.isascii() or not raw.isalnum():
        raise BadArg(f"not a hex string: {as_text(text)!r}")
    try:
        return bytes.fromhex(raw)
    except ValueError as exc:
        raise BadArg(f"not a hex string: {as_text(text)!r}") from exc


def sqlserver_bin2hexstr(data: Any) -> str:
    """A binary as a SQL Server hex literal, ``0x`` followed by upper-case hex."""
    return "0x" + bin2hexstr(data)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "str": str_,
    "str_utf8": str_,
    "str_utf16_le": str_utf16_le,
    "bool": bool_,
    "int": int_,
    "float": float_,
    "float2str": float2str,
    "map": to_map,
    "bin2hexstr": bin2hexstr,
    "hexstr2bin": hexstr2bin,
    "sqlserver_bin2hexstr": sqlserver_bin2hexstr,
}

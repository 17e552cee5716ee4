"""Value semantics of rule SQL, following EMQX (an Erlang runtime) in Python types.

Mapping of types: EMQX ``undefined`` and JSON ``null`` are ``None``; binaries are ``str`` (text) or
``bytes`` (anything else); maps are ``dict``; lists are ``list``; ``true``/``false`` are ``bool``.
Python's ``bool`` is an ``int`` subclass, so every numeric check here excludes it on purpose:
in Erlang ``true + 1`` is an error and ``true = 1`` is false.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from mqferry._rules.errors import RuleEvalError

__all__ = [
    "arith_add",
    "arith_div",
    "arith_intdiv",
    "arith_mod",
    "arith_mul",
    "arith_sub",
    "compare",
    "exact_eq",
    "is_number",
    "json_dumps",
    "loose_eq",
    "negate",
    "parse_number",
    "to_str",
]

_NUMBER = (int, float)
# Erlang's binary_to_float only accepts ``digits.digits[e[+-]digits]``.
_ERL_FLOAT = re.compile(r"[+-]?\d+\.\d+(?:[eE][+-]?\d+)?\Z")
_ERL_INT = re.compile(r"[+-]?\d+\Z")


def is_number(value: object) -> bool:
    """Whether ``value`` is an int or float (never a bool)."""
    t = type(value)
    return t is int or t is float


def format_float(value: float, decimals: int = 10) -> str:
    """Format like Erlang ``float_to_binary(F, [{decimals, N}, compact])``."""
    if math.isinf(value) or math.isnan(value):
        raise RuleEvalError("badarg", f"cannot format {value!r}")
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0")
        if text.endswith("."):
            text += "0"
    if text == "-0.0":
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    return text


def json_dumps(value: Any) -> str:
    """Encode a value as compact JSON text, the way rule outputs and ``str(map)`` render."""
    try:
        return orjson.dumps(value, default=_json_default).decode()
    except TypeError as exc:
        raise RuleEvalError("bad_sql_function_argument", f"cannot encode as JSON: {exc}") from exc


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(type(value).__name__)


def to_str(value: Any) -> str:  # noqa: PLR0911 - one return per Erlang type
    """Convert any value to a string as EMQX's implicit conversion does.

    Numbers print as Erlang does (floats with up to 10 decimals), booleans as ``true``/``false``,
    ``undefined`` as ``undefined``, maps and lists as JSON.
    """
    t = type(value)
    if t is str:
        return value  # type: ignore[no-any-return]
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if t is float:
        return format_float(value)
    if value is None:
        return "undefined"
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RuleEvalError("bad_sql_function_argument", "binary is not UTF-8") from exc
    if isinstance(value, dict | list | tuple):
        return json_dumps(value)
    return str(value)


def parse_number(text: str | bytes) -> int | float:
    """Parse a string as EMQX does when comparing it to a number.

    Raises:
        RuleEvalError: the string is neither an Erlang integer nor an Erlang float.
    """
    s = text.decode("utf-8", "replace") if isinstance(text, bytes | bytearray) else text
    if _ERL_INT.match(s):
        return int(s)
    if _ERL_FLOAT.match(s):
        return float(s)
    raise RuleEvalError("badarg", f"cannot compare {s!r} with a number")


# --------------------------------------------------------------------------- equality


def exact_eq(a: Any, b: Any) -> bool:
    """Erlang ``=:=``: same type and value; ``1`` and ``1.0`` differ. Used by IN and CASE x WHEN."""
    ta, tb = type(a), type(b)
    if ta is not tb:
        if isinstance(a, str | bytes) and isinstance(b, str | bytes):
            return _as_bytes(a) == _as_bytes(b)
        return False
    if ta is list or ta is tuple:
        return len(a) == len(b) and all(exact_eq(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict:
        return a.keys() == b.keys() and all(exact_eq(v, b[k]) for k, v in a.items())
    return bool(a == b)


def loose_eq(a: Any, b: Any) -> bool:
    """Erlang ``==``: like ``exact_eq`` but ``1 == 1.0``."""
    if is_number(a) and is_number(b):
        return bool(a == b)
    ta, tb = type(a), type(b)
    if ta is not tb:
        if isinstance(a, str | bytes) and isinstance(b, str | bytes):
            return _as_bytes(a) == _as_bytes(b)
        return False
    if ta is list or ta is tuple:
        return len(a) == len(b) and all(loose_eq(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict:
        return a.keys() == b.keys() and all(loose_eq(v, b[k]) for k, v in a.items())
    return bool(a == b)


def _as_bytes(v: str | bytes) -> bytes:
    return v.encode() if isinstance(v, str) else bytes(v)


# --------------------------------------------------------------------------- ordering

# Erlang's term order: number < atom < map < list < binary. Booleans and undefined are atoms.
def _rank(v: Any) -> int:
    t = type(v)
    if t is int or t is float:
        return 0
    if t is bool or v is None:
        return 1
    if t is dict:
        return 3
    if t is list or t is tuple:
        return 4
    return 5


def _order(a: Any, b: Any) -> int:  # noqa: PLR0911 - one return per Erlang type
    ra, rb = _rank(a), _rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == 5:
        a, b = _as_bytes(a) if isinstance(a, str | bytes) else a, (
            _as_bytes(b) if isinstance(b, str | bytes) else b
        )
    elif ra == 1:
        a, b = _atom_text(a), _atom_text(b)
    elif ra == 3:
        # Erlang orders maps by size first; deeper ordering of maps is not worth emulating.
        if len(a) != len(b):
            return -1 if len(a) < len(b) else 1
        return 0 if loose_eq(a, b) else (-1 if repr(a) < repr(b) else 1)
    elif ra == 4:
        for x, y in zip(a, b, strict=False):
            c = _order(x, y)
            if c:
                return c
        return (len(a) > len(b)) - (len(a) < len(b))
    if a == b:
        return 0
    return -1 if a < b else 1


def _atom_text(v: Any) -> str:
    if v is None:
        return "undefined"
    return "true" if v else "false"


def compare(op: str, left: Any, right: Any) -> bool:  # noqa: PLR0911, PLR0912 - the operator table
    """Apply a comparison operator with EMQX semantics.

    ``undefined`` equals ``undefined``; any other comparison with ``undefined`` is false. A string
    compared with a number is parsed as a number; a boolean compared with a string compares as the
    string ``true``/``false``.
    """
    if left is None or right is None:
        if left is None and right is None:
            return op in ("=", "<=", ">=")
        return False
    if op == "=~":
        from mqferry._rules.topic import topic_matches

        if not isinstance(left, str) or not isinstance(right, str):
            raise RuleEvalError("badarg", "=~ needs a topic and a topic filter")
        return topic_matches(right, left)
    lt, rt = type(left), type(right)
    if (lt is int or lt is float) and (rt is int or rt is float):
        pass
    elif (lt is int or lt is float) and isinstance(right, str | bytes):
        right = parse_number(right)
    elif isinstance(left, str | bytes) and (rt is int or rt is float):
        left = parse_number(left)
    elif lt is bool and isinstance(right, str | bytes):
        left = "true" if left else "false"
    elif isinstance(left, str | bytes) and rt is bool:
        right = "true" if right else "false"
    if op == "=":
        return loose_eq(left, right)
    if op in ("!=", "<>"):
        return not loose_eq(left, right)
    if is_number(left) and is_number(right):
        if op == ">":
            return bool(left > right)
        if op == "<":
            return bool(left < right)
        if op == ">=":
            return bool(left >= right)
        return bool(left <= right)
    c = _order(left, right)
    if op == ">":
        return c > 0
    if op == "<":
        return c < 0
    if op == ">=":
        return c >= 0
    return c <= 0


# --------------------------------------------------------------------------- arithmetic


def _badarith(op: str, a: Any, b: Any) -> RuleEvalError:
    return RuleEvalError("badarith", f"{to_repr(a)} {op} {to_repr(b)}")


def to_repr(v: Any) -> str:
    """A short readable rendering of a value for error messages."""
    if v is None:
        return "undefined"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def arith_add(a: Any, b: Any) -> Any:
    """``+``: adds numbers; with a string on either side, concatenates as strings."""
    ta, tb = type(a), type(b)
    if (ta is int or ta is float) and (tb is int or tb is float):
        return a + b
    if isinstance(a, str | bytes) or isinstance(b, str | bytes):
        return to_str(a) + to_str(b)
    raise _badarith("+", a, b)


def arith_sub(a: Any, b: Any) -> Any:
    """``-`` on two numbers."""
    if is_number(a) and is_number(b):
        return a - b
    raise _badarith("-", a, b)


def arith_mul(a: Any, b: Any) -> Any:
    """``*`` on two numbers."""
    if is_number(a) and is_number(b):
        return a * b
    raise _badarith("*", a, b)


def arith_div(a: Any, b: Any) -> float:
    """``/``: always a float, as in Erlang (``4 / 2`` is ``2.0``)."""
    if is_number(a) and is_number(b):
        if b == 0:
            raise _badarith("/", a, b)
        if type(a) is int and type(b) is int:
            # True division of big ints without going through float first loses less precision.
            return a / b
        return float(a) / float(b)
    raise _badarith("/", a, b)


def arith_intdiv(a: Any, b: Any) -> int:
    """``div``: integer division truncating toward zero (Erlang ``div``)."""
    if type(a) is int and type(b) is int:
        if b == 0:
            raise _badarith("div", a, b)
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    raise _badarith("div", a, b)


def arith_mod(a: Any, b: Any) -> int:
    """``mod``: remainder with the sign of the dividend (Erlang ``rem``)."""
    if type(a) is int and type(b) is int:
        if b == 0:
            raise _badarith("mod", a, b)
        return a - b * arith_intdiv(a, b)
    raise _badarith("mod", a, b)


def negate(a: Any) -> Any:
    """Unary minus on a number."""
    if is_number(a):
        return -a
    raise RuleEvalError("badarith", f"-{to_repr(a)}")

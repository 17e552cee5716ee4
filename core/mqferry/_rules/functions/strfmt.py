"""String building: ``sprintf`` (Erlang ``io_lib:format`` directives), ``pad``, joins,
``unescape``.

Lengths given by the caller (``pad``'s length, ``sprintf`` field widths and precisions) are
bounded by :data:`~mqferry._rules.functions._args.MAX_RESULT_SIZE`, so a small rule or message
cannot make a call allocate gigabytes; float precisions stop at 253 digits, as Erlang's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mqferry._rules import values
from mqferry._rules.functions._args import BadArg, as_int, as_list, as_text, check_size
from mqferry._rules.functions._graphemes import glen

__all__ = ["FUNCTIONS", "erlang_repr"]

_DIRECTIVE = re.compile(r"~(-?\d+|\*)?(?:\.(\d+|\*)?)?(?:\.(.))?(t?)([~nscpwPWfegbBxX#i+])")
_HEX = re.compile(r"[0-9a-fA-F]+")
#: Most digits after the point a float is written with (Erlang's ``float_to_binary`` limit).
MAX_DECIMALS = 253


def erlang_repr(value: Any) -> str:  # noqa: PLR0911 - one return per Erlang type
    """A value written as Erlang ``~p`` prints it (binaries as ``<<"...">>``)."""
    if value is None:
        return "undefined"
    t = type(value)
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if t is float:
        return str(repr(value))
    if isinstance(value, str | bytes):
        text = value if isinstance(value, str) else value.decode("utf-8", "replace")
        body = text.replace("\\", "\\\\").replace('"', '\\"')
        suffix = "/utf8" if isinstance(value, str) and not text.isascii() else ""
        return f'<<"{body}"{suffix}>>'
    if t is list:
        return "[" + ",".join(erlang_repr(v) for v in value) + "]"
    if t is dict:
        return "#{" + ",".join(f"{erlang_repr(k)} => {erlang_repr(v)}"
                               for k, v in value.items()) + "}"
    return str(value)


def sprintf(fmt: Any, *args: Any) -> str:
    """Format like Erlang ``io_lib:format``: ``~s ~p ~w ~b ~f ~e ~g ~c ~n ~~`` with widths."""
    text = as_text(fmt)
    queue = list(args)
    out: list[str] = []
    pos = 0
    for m in _DIRECTIVE.finditer(text):
        out.append(text[pos:m.start()])
        pos = m.end()
        width_s, prec_s, pad_s, _t, ctl = m.groups()
        width = _field(queue, width_s, "field width")
        prec = _field(queue, prec_s, "precision")
        out.append(_directive(ctl, width, prec, pad_s or " ", queue))
    out.append(text[pos:])
    if queue:
        raise BadArg("more arguments than format directives")
    return "".join(out)


def _field(queue: list[Any], spec: str | None, what: str) -> int | None:
    if not spec:
        return None
    # A width from the format has only digits; one from the arguments must be an integer.
    size = as_int(_take(queue), f"integer {what}") if spec == "*" else int(spec)
    check_size(abs(size), what)
    return size


def _take(queue: list[Any]) -> Any:
    if not queue:
        raise BadArg("fewer arguments than format directives")
    return queue.pop(0)


def _directive(  # noqa: PLR0912 - one branch per io_lib control character
    ctl: str, width: int | None, prec: int | None, pad: str,
               queue: list[Any]) -> str:
    if ctl == "~":
        return "~"
    if ctl == "n":
        return "\n"
    arg = _take(queue)
    if ctl == "s":
        body = values.to_str(arg) if not isinstance(arg, list) else "".join(
            values.to_str(i) for i in arg)
        body = body[:prec] if prec is not None else body
    elif ctl in "pPwW":
        body = erlang_repr(arg)
    elif ctl in "bBxX#":
        base = prec or 10
        body = _int_base(as_int(arg), base, lower=ctl in "bx")
    elif ctl == "i":
        return ""
    elif ctl == "+":
        body = erlang_repr(arg)
    elif ctl == "c":
        return chr(as_int(arg)) * (width or 1)
    else:
        num = float(arg) if type(arg) in (int, float) else None
        if num is None:
            raise BadArg(f"~{ctl} needs a number")
        digits = 6 if prec is None else prec
        if digits > MAX_DECIMALS:
            raise BadArg(f"precision {digits} exceeds the limit of {MAX_DECIMALS} digits")
        if ctl == "f":
            body = f"{num:.{digits}f}"
        elif ctl == "e":
            body = _erl_exp(num, digits)
        else:
            body = f"{num:.{digits}f}" if 0.1 <= abs(num) < 10**digits else _erl_exp(num, digits)
    if width is not None and len(body) < abs(width):
        body = body.ljust(abs(width), pad) if width < 0 else body.rjust(width, pad)
    return body


def _int_base(n: int, base: int, *, lower: bool) -> str:
    if not 2 <= base <= 36:
        raise BadArg("base must be 2..36")
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if n == 0:
        return "0"
    sign, n = ("-", -n) if n < 0 else ("", n)
    out = []
    while n:
        n, r = divmod(n, base)
        out.append(digits[r])
    text = sign + "".join(reversed(out))
    return text.lower() if lower else text


def _erl_exp(num: float, digits: int) -> str:
    # Erlang ~e takes the total number of significant digits (default 6).
    mantissa, exp = f"{num:.{max(digits - 1, 0)}e}".split("e")
    return f"{mantissa}e{int(exp):+03d}"


def pad(s: Any, length: Any, where: Any = "trailing", char: Any = " ") -> str:
    """Pad to ``length`` characters at the end, start (``leading``) or both ends.

    Lengths count grapheme clusters, as Erlang's ``string:pad`` does.
    """
    text, size, mode, filler = as_text(s), as_int(length), as_text(where), as_text(char)
    if not filler:
        raise BadArg("the pad character must not be empty")
    check_size(size * len(filler), "padded length")
    missing = size - glen(text)
    if missing <= 0:
        return text
    if mode == "trailing":
        return text + filler * missing
    if mode == "leading":
        return filler * missing + text
    if mode == "both":
        left = missing // 2
        return filler * left + text + filler * (missing - left)
    raise BadArg(f"unknown pad option {mode!r}")


def join_to_string(*args: Any) -> str:
    """Join list items as strings: ``join_to_string(list)`` (with ``', '``) or
    ``join_to_string(sep, list)``."""
    if len(args) == 1:
        sep, items = ", ", as_list(args[0])
    else:
        sep, items = as_text(args[0]), as_list(args[1])
    return sep.join(values.to_str(i) for i in items)


def _quote_sql(value: Any) -> str:
    if value is None:
        return "NULL"
    if type(value) in (int, float):
        return values.to_str(value)
    if type(value) is bool:
        return "true" if value else "false"
    text = values.json_dumps(value) if isinstance(value, list | dict) else values.to_str(value)
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def join_to_sql_values_string(items: Any) -> str:
    """Items as a SQL ``VALUES`` list body: numbers bare, strings quoted, lists as quoted JSON."""
    return ", ".join(_quote_sql(i) for i in as_list(items))


_ESCAPES = {"\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v",
            "'": "'", '"': '"', "?": "?", "a": "\a"}


def unescape(s: Any) -> str:
    """Turn escape sequences (``\\n``, ``\\t``, ``\\x41`` ...) into the characters they name.

    Rule SQL keeps backslashes in string literals as written; this is how to get a newline.
    """
    text = as_text(s)
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\" or i + 1 >= len(text):
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "x" and i + 2 < len(text) and text[i + 2] in "0123456789abcdefABCDEF":
            # match at a position, not on a slice: a slice per escape is quadratic
            m = _HEX.match(text, i + 2)
            assert m is not None
            code = int(m.group(0), 16)
            if code > 0x10FFFF:
                raise BadArg(f"invalid unicode character \\x{m.group(0)}")
            out.append(chr(code))
            i = m.end()
        else:
            raise BadArg(f"unrecognized escape sequence \\{nxt}")
    return "".join(out)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sprintf": sprintf,
    "pad": pad,
    "join_to_string": join_to_string,
    "join_to_sql_values_string": join_to_sql_values_string,
    "unescape": unescape,
}
ARITY: dict[str, tuple[int, int | None]] = {"join_to_string": (1, 2)}

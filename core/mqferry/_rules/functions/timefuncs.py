"""Date and time: epochs, RFC 3339, and EMQX's ``%Y-%m-%d %H:%M:%S`` style formats.

Format directives: ``%Y %m %d %H %M %S``, ``%N`` (nanoseconds, 9 digits), ``%3N`` and ``%6N``
(milli- and microseconds), ``%z`` (+hhmm), ``%:z`` (+hh:mm), ``%::z`` (+hh:mm:ss). Offsets are
``'Z'``, ``'local'``, ``'+08:00'``-style strings or a number of seconds.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from typing import Any

from mqferry._rules.functions._args import BadArg, as_int, as_text

__all__ = ["FUNCTIONS"]

_UNITS = {"second": 1, "millisecond": 1_000, "microsecond": 1_000_000,
          "nanosecond": 1_000_000_000}
_DIRECTIVE = re.compile(r"%(::z|:z|z|[36]?N|[YmdHMS%])")


def _unit(name: Any) -> int:
    per_second = _UNITS.get(as_text(name))
    if per_second is None:
        raise BadArg(f"unknown time unit {name!r}")
    return per_second


def _local_offset(epoch_s: float) -> int:
    return int(time.localtime(epoch_s).tm_gmtoff)


def offset_seconds(offset: Any, epoch_s: float = 0.0) -> int:
    """An offset (``'Z'``, ``'local'``, ``'+08:00'``, ``'-0330'`` or seconds) in seconds."""
    if type(offset) is int:
        return offset
    text = as_text(offset)
    if text in ("Z", "z"):
        return 0
    if text in ("", "local"):
        return _local_offset(epoch_s)
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})(?::?(\d{2}))?", text)
    if not m:
        raise BadArg(f"invalid time zone offset {text!r}")
    sign = -1 if m.group(1) == "-" else 1
    secs = int(m.group(2)) * 3600 + int(m.group(3)) * 60 + int(m.group(4) or 0)
    return sign * secs


def _fmt_offset(secs: int, style: str) -> str:
    sign = "-" if secs < 0 else "+"
    h, rem = divmod(abs(secs), 3600)
    m, s = divmod(rem, 60)
    if style == "z":
        return f"{sign}{h:02d}{m:02d}"
    if style == ":z":
        return f"{sign}{h:02d}:{m:02d}"
    return f"{sign}{h:02d}:{m:02d}:{s:02d}"


def _format(epoch_ns: int, offset: int, fmt: str) -> str:
    secs, ns = divmod(epoch_ns, 1_000_000_000)
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=secs + offset)

    def field(m: re.Match[str]) -> str:
        d = m.group(1)
        return {
            "Y": f"{moment.year:04d}", "m": f"{moment.month:02d}", "d": f"{moment.day:02d}",
            "H": f"{moment.hour:02d}", "M": f"{moment.minute:02d}", "S": f"{moment.second:02d}",
            "N": f"{ns:09d}", "3N": f"{ns // 1_000_000:03d}", "6N": f"{ns // 1_000:06d}",
            "%": "%",
        }.get(d) or _fmt_offset(offset, d)
    return _DIRECTIVE.sub(field, fmt)


def format_date(unit: Any, offset: Any, fmt: Any, epoch: Any = None) -> str:
    """Format an epoch (now when omitted) in ``unit`` at ``offset`` with ``fmt``."""
    per_second = _unit(unit)
    value = time.time_ns() * per_second // 1_000_000_000 if epoch is None else as_int(epoch)
    epoch_ns = value * 1_000_000_000 // per_second
    return _format(epoch_ns, offset_seconds(offset, epoch_ns / 1e9), as_text(fmt))


#: How many bytes of the input each directive of a parsed format reads (EMQX's fixed widths).
_PARSE_WIDTHS = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2, "3N": 3, "6N": 6, "N": 9,
                 "z": 5, ":z": 6, "::z": 9}
_PARSE_DIRECTIVE = re.compile(r"%(::z|:z|z|[36]?N|[YmdHMS])")
_REQUIRED = (("Y", "year"), ("m", "month"), ("d", "day"), ("H", "hour"), ("M", "minute"),
             ("S", "second"))
_INT = re.compile(r"[+-]?\d+")


def _format_steps(fmt: str) -> list[tuple[str | None, int]]:
    """A parse format as ``(directive or None for literal text, width in bytes)`` steps."""
    steps: list[tuple[str | None, int]] = []
    pos = 0
    for m in _PARSE_DIRECTIVE.finditer(fmt):
        if m.start() > pos:
            steps.append((None, len(fmt[pos:m.start()].encode("utf-8"))))
        steps.append((m.group(1), _PARSE_WIDTHS[m.group(1)]))
        pos = m.end()
    if pos < len(fmt):
        steps.append((None, len(fmt[pos:].encode("utf-8"))))
    return steps


def _parse(fmt: str, text: str) -> int:
    """Parse ``text`` with ``fmt`` as EMQX does: nanoseconds since the epoch.

    Each directive reads a fixed number of bytes; literal text in the format is skipped by its
    length without being compared (EMQX keeps this for 4.x compatibility, so
    ``'%Y-%m-%d %H-%M-%S'`` reads ``'2022-05-26 10:40:12'``). Parsing ends with the input or the
    format; year to second must all have been read. An offset read by ``%z`` is applied.
    """
    data = text.encode("utf-8")
    parts: dict[str, int] = {}
    offset = 0
    pos = 0
    for directive, width in _format_steps(fmt):
        if pos >= len(data):
            break
        if pos + width > len(data):
            raise BadArg(f"{text!r} does not match the format {fmt!r} (it is shorter)")
        chunk = data[pos:pos + width].decode("utf-8", "replace")
        pos += width
        if directive is None:
            continue
        if directive.endswith("z"):
            offset = offset_seconds(chunk)
        elif _INT.fullmatch(chunk):
            parts[directive] = int(chunk)
        else:
            raise BadArg(f"bad_formatter_or_date: {text!r} does not match the format {fmt!r} "
                         f"({chunk!r} is not a number)")
    for key, name in _REQUIRED:
        if key not in parts:
            raise BadArg(f"the date {text!r} has no {name} (format {fmt!r})")
    try:
        moment = dt.datetime(parts["Y"], parts["m"], parts["d"], parts["H"], parts["M"],
                             parts["S"], tzinfo=dt.UTC)
    except ValueError as exc:
        raise BadArg(f"{text!r}: {exc}") from exc
    fraction = (parts.get("3N", 0) * 1_000_000 + parts.get("6N", 0) * 1_000
                + parts.get("N", 0))
    return (int(moment.timestamp()) - offset) * 1_000_000_000 + fraction


def date_to_unix_ts(unit: Any, *args: Any) -> int:
    """Parse a date string: ``date_to_unix_ts(unit, [offset,] format, input)``.

    The format is read as EMQX reads it (see :func:`_parse`). An ``offset`` argument is
    subtracted from the result, after any offset the input carried, as in EMQX.
    """
    per_second = _unit(unit)
    fmt, text = as_text(args[-2]), as_text(args[-1])
    epoch_ns = _parse(fmt, text)
    if len(args) == 3:
        epoch_ns -= offset_seconds(args[0], epoch_ns / 1e9) * 1_000_000_000
    return epoch_ns * per_second // 1_000_000_000


def now_timestamp(unit: Any = "second") -> int:
    """The current time since the epoch in ``unit``."""
    return time.time_ns() * _unit(unit) // 1_000_000_000


def unix_ts_to_rfc3339(epoch: Any, unit: Any = "second") -> str:
    """An epoch as RFC 3339 in local time, with fractions for sub-second units."""
    per_second = _unit(unit)
    value = as_int(epoch)
    secs, frac = divmod(value, per_second)
    offset = _local_offset(secs)
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=secs + offset)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if per_second > 1:
        digits = len(str(per_second)) - 1
        text += f".{frac:0{digits}d}"
    return text + _fmt_offset(offset, ":z")


def now_rfc3339(unit: Any = "second") -> str:
    """The current time as RFC 3339 in local time."""
    return unix_ts_to_rfc3339(now_timestamp(unit), unit)


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z"
)


def rfc3339_to_unix_ts(text: Any, unit: Any = "second") -> int:
    """Parse an RFC 3339 timestamp into an epoch in ``unit``."""
    per_second = _unit(unit)
    m = _RFC3339.match(as_text(text))
    if not m:
        raise BadArg(f"not an RFC 3339 timestamp: {text!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "").ljust(9, "0")[:9]
    offset = offset_seconds(m.group(8))
    moment = dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.UTC)
    ns = (int(moment.timestamp()) - offset) * 1_000_000_000 + int(frac)
    return ns * per_second // 1_000_000_000


def timezone_to_offset_seconds(offset: Any) -> int:
    """A time zone offset (``'+08:00'``, ``'Z'``, ``'local'``) in seconds."""
    return offset_seconds(offset, time.time())


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "now_timestamp": now_timestamp,
    "now_rfc3339": now_rfc3339,
    "unix_ts_to_rfc3339": unix_ts_to_rfc3339,
    "rfc3339_to_unix_ts": rfc3339_to_unix_ts,
    "format_date": format_date,
    "date_to_unix_ts": date_to_unix_ts,
    "timezone_to_second": timezone_to_offset_seconds,
    "timezone_to_offset_seconds": timezone_to_offset_seconds,
}
ARITY: dict[str, tuple[int, int | None]] = {"date_to_unix_ts": (3, 4)}

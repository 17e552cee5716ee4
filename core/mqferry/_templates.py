"""``${...}`` templates, as EMQX's placeholder engine renders them.

A template is parsed once into literal and placeholder parts. ``${a.b}`` looks up ``a`` then ``b``;
a leading dot is ignored, so ``${.a}`` is ``${a}``; ``${.}`` is the whole input. When a value on
the way is a JSON string, it is decoded on the fly, so ``${payload.temp}`` reaches into a JSON
payload. Rendering: strings as they are, integers in decimal, floats with up to 10 decimals and
no trailing zeros, booleans as ``true``/``false``, maps and lists as JSON. Bytes (a payload that
is not UTF-8) are written unchanged by :meth:`Template.render_bytes`; inside JSON they become text
with U+FFFD for each invalid sequence, as EMQX writes them, and the caller is told
(``on_replaced``) so that it counts and logs it. What a *missing* value
renders as is the caller's choice (``""`` for Kafka fields, ``"undefined"`` for republish, as
EMQX); :meth:`Template.render_strict` raises instead.

Values come from messages, so they may be hostile: a map or list nested deeper than
:data:`MAX_JSON_DEPTH` levels, or an integer beyond 64 bits, cannot be rendered as JSON and
raises :class:`~mqferry._errors.TemplateError` saying so (never a ``TypeError`` or a
``RecursionError``). A JSON string too deep to decode on the way of a placeholder is not followed
(the placeholder has no value), like any other text that is not JSON.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from mqferry._errors import TemplateError

_TOKEN = re.compile(r"\$\{([^}]*)\}")


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


#: Returned by :meth:`Template.value` when a placeholder has no value.
MISSING: Final = _Missing()


#: Called when bytes that are not UTF-8 were written as text with U+FFFD replacement characters
#: (JSON strings cannot carry them), so the caller counts and logs it: never silently.
OnReplaced = Callable[[], None]


def _json_default(on_replaced: OnReplaced | None) -> Callable[[Any], Any]:
    def default(obj: Any) -> Any:
        if isinstance(obj, bytes | bytearray | memoryview):
            return _decode(bytes(obj), on_replaced)
        if isinstance(obj, set | frozenset | tuple):
            return list(obj)
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")

    return default


def _decode(raw: bytes, on_replaced: OnReplaced | None) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # EMQX's JSON encoder (jiffy with force_utf8) writes U+FFFD for what is not UTF-8.
        if on_replaced is not None:
            on_replaced()
        return raw.decode("utf-8", "replace")


#: The deepest nesting of maps and lists that renders as JSON (orjson's own limit).
MAX_JSON_DEPTH: Final = 254


def to_json(value: Any, on_replaced: OnReplaced | None = None) -> bytes:
    """JSON-encode a rule output (bytes become text).

    Bytes that are not UTF-8 become text as EMQX writes them, each invalid sequence replaced by
    U+FFFD, and ``on_replaced`` is called (once per such value) so the caller can say so.

    Raises:
        TemplateError: the value cannot be encoded: nested deeper than :data:`MAX_JSON_DEPTH`, an
            integer beyond 64 bits, a map key that is not text.
    """
    try:
        return orjson.dumps(value, default=_json_default(on_replaced))
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise TemplateError(_encode_problem(exc)) from None
    except RecursionError:  # a value the default hook walks (tuples, sets) nested too deep
        raise TemplateError(_encode_problem(None)) from None


def _encode_problem(exc: TypeError | None) -> str:
    text = str(exc) if exc is not None else ""
    if exc is None or "recursion" in text.lower():
        return (f"cannot render a value as JSON: it is nested deeper than {MAX_JSON_DEPTH} "
                "levels of maps and lists")
    return f"cannot render a value as JSON: {text}"


def format_float(value: float) -> str:
    """A float with at most 10 decimals, trailing zeros trimmed (EMQX's compact form)."""
    text = f"{value:.10f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def to_text(value: Any) -> str:  # noqa: PLR0911 - one return per type reads best
    """Render a value into template text (not for missing values).

    Raises:
        TemplateError: a map or list that cannot be rendered as JSON (see :func:`to_json`).
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(int(value))  # the number, also of an int subclass (an IntEnum member)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if value is None:
        return "undefined"
    return to_json(value).decode()


def value_bytes(v: Any, on_replaced: OnReplaced | None = None) -> bytes:
    """A placeholder's value as a single-placeholder template renders it (not ``MISSING``).

    Bytes as they are, a map or list as JSON, anything else as its text.

    Raises:
        TemplateError: a value cannot be rendered as JSON (see :func:`to_json`).
    """
    tp = type(v)
    if tp is bytes:
        return v  # type: ignore[no-any-return]
    if tp is str:
        return v.encode()  # type: ignore[no-any-return]
    if isinstance(v, bytes):
        return v
    if isinstance(v, Mapping | list):
        return to_json(v, on_replaced)
    return to_text(v).encode()


def lookup(data: Any, path: tuple[str, ...]) -> Any:
    """Follow ``path`` into ``data``, decoding JSON strings on the way; else :data:`MISSING`."""
    cur = data
    for key in path:
        if isinstance(cur, dict):  # the common case, without the Mapping ABC's check
            if key in cur:
                cur = cur[key]
                continue
            return MISSING
        if isinstance(cur, str | bytes) and cur[:1] in ("{", b"{"):
            try:
                cur = orjson.loads(cur)
            except orjson.JSONDecodeError:  # not JSON, or nested beyond orjson's 1024 levels
                return MISSING
        if isinstance(cur, Mapping):
            if key in cur:
                cur = cur[key]
                continue
            return MISSING
        if isinstance(cur, list) and key.lstrip("-").isdigit():
            idx = int(key)
            # Rule SQL indexes are 1-based; keep templates consistent with them.
            idx = idx - 1 if idx > 0 else idx
            try:
                cur = cur[idx]
            except IndexError:
                return MISSING
            continue
        return MISSING
    return cur


@dataclass(frozen=True, slots=True)
class _Placeholder:
    source: str
    path: tuple[str, ...]


def _parse_path(inner: str, text: str) -> tuple[str, ...]:
    inner = inner.strip()
    if inner in ("", "."):
        return ()
    path = tuple(inner.removeprefix(".").split("."))
    if any(p == "" for p in path):
        raise TemplateError(f"invalid placeholder ${{{inner}}} in template {text!r}")
    return path


class Template:
    """A parsed ``${...}`` template.

    Args:
        text: the template text.

    Raises:
        TemplateError: a placeholder is malformed (``${a..b}``) or not closed.
    """

    __slots__ = ("_literal", "_parts", "_single", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        parts: list[str | _Placeholder] = []
        pos = 0
        for m in _TOKEN.finditer(text):
            if m.start() > pos:
                parts.append(text[pos : m.start()])
            parts.append(_Placeholder(m.group(0), _parse_path(m.group(1), text)))
            pos = m.end()
        if pos < len(text):
            parts.append(text[pos:])
        if any(isinstance(p, str) and "${" in p for p in parts):
            raise TemplateError(f"unclosed placeholder in template {text!r}")
        self._parts: tuple[str | _Placeholder, ...] = tuple(parts)
        self._single = len(parts) == 1 and isinstance(parts[0], _Placeholder)
        #: the text, when there is no placeholder: every rendering is that text
        self._literal = None if any(isinstance(p, _Placeholder) for p in parts) else text

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The placeholders, as written (``${.clientid}``)."""
        return tuple(p.source for p in self._parts if isinstance(p, _Placeholder))

    @property
    def is_single_placeholder(self) -> bool:
        """Whether the template is exactly one placeholder and nothing else."""
        return self._single

    @property
    def is_literal(self) -> bool:
        """Whether the template has no placeholder."""
        return self._literal is not None

    def value(self, data: Any) -> Any:
        """The raw value of a single-placeholder template (:data:`MISSING` when absent)."""
        if not self._single:
            return self.render(data)
        part = self._parts[0]
        assert isinstance(part, _Placeholder)
        return lookup(data, part.path)

    def value_bytes(self, data: Any, *, on_replaced: OnReplaced | None = None) -> bytes | None:
        """A single-placeholder template's value as :meth:`render_bytes` writes it, or ``None``
        when the value is missing or null (one lookup; a Kafka null key or value).

        Raises:
            TemplateError: a value cannot be rendered as JSON (see :func:`to_json`).
        """
        if not self._single:
            raise TypeError(f"{self.text!r} is not a single placeholder")
        part = self._parts[0]
        assert isinstance(part, _Placeholder)
        v = lookup(data, part.path)
        if v is MISSING or v is None:
            return None
        return value_bytes(v, on_replaced)

    def render(self, data: Any, *, missing: str = "") -> str:
        """Render, writing ``missing`` for placeholders without a value.

        Raises:
            TemplateError: a value cannot be rendered as JSON (see :func:`to_json`).
        """
        out = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            v = lookup(data, part.path)
            out.append(missing if v is MISSING or v is None else to_text(v))
        return "".join(out)

    def render_bytes(self, data: Any, *, missing: str = "",
                     on_replaced: OnReplaced | None = None) -> bytes:
        """Render to bytes; ``${.}`` of a map is encoded straight to JSON bytes.

        A bytes value is written as it is, whether the template is that one placeholder
        (``${payload}``) or text around it (``raw=${payload}``), as EMQX does: a payload that is
        not UTF-8 passes unchanged. Inside JSON (a map or list value, ``${.}``) bytes that are
        not UTF-8 cannot be written as they are: see :func:`to_json` and ``on_replaced``.

        Raises:
            TemplateError: a value cannot be rendered as JSON (see :func:`to_json`).
        """
        if self._single:
            single = self.value_bytes(data, on_replaced=on_replaced)
            return missing.encode() if single is None else single
        if self._literal is not None:
            return self._literal.encode()
        out: list[bytes] = []
        for p in self._parts:
            if isinstance(p, str):
                out.append(p.encode())
                continue
            v = lookup(data, p.path)
            if v is MISSING or v is None:
                out.append(missing.encode())
            elif isinstance(v, bytes | bytearray):
                out.append(bytes(v))
            elif isinstance(v, Mapping | list):
                out.append(to_json(v, on_replaced))
            else:
                out.append(to_text(v).encode())
        return b"".join(out)

    def render_strict(self, data: Any) -> str:
        """Render, raising when a placeholder has no value.

        Raises:
            TemplateError: naming the first missing placeholder, or a value that cannot be
                rendered as JSON.
        """
        if self._literal is not None:
            return self._literal
        out = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            v = lookup(data, part.path)
            if v is MISSING or v is None:
                raise TemplateError(f"{part.source} has no value")
            out.append(to_text(v))
        return "".join(out)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def check_template(text: str) -> str:
    """A pydantic field validator body: ``text`` if it parses as a template.

    Raises:
        ValueError: the template is malformed (pydantic reports it at the field's path).
    """
    try:
        Template(text)
    except TemplateError as exc:
        raise ValueError(str(exc)) from None
    return text

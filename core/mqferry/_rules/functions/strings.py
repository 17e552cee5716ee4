"""String functions: case, trimming, slicing, splitting, replacing, finding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mqferry._rules import values
from mqferry._rules.functions._args import BadArg, as_int, as_list, as_text, check_size
from mqferry._rules.functions._graphemes import gfind, glen, graphemes, grfind, gsplit

__all__ = ["FUNCTIONS"]


def lower(s: Any) -> str:
    """Lower-case."""
    return as_text(s).lower()


def upper(s: Any) -> str:
    """Upper-case."""
    return as_text(s).upper()


def trim(s: Any, chars: Any = None) -> str:
    """Strip whitespace (or the given characters) from both ends."""
    return as_text(s).strip(None if chars is None else as_text(chars))


def ltrim(s: Any, chars: Any = None) -> str:
    """Strip leading whitespace (or the given characters)."""
    return as_text(s).lstrip(None if chars is None else as_text(chars))


def rtrim(s: Any, chars: Any = None) -> str:
    """Strip trailing whitespace (or the given characters)."""
    return as_text(s).rstrip(None if chars is None else as_text(chars))


def reverse(s: Any) -> str:
    """The string reversed by grapheme cluster (``'a\\r\\n'`` gives ``'\\r\\na'``)."""
    return "".join(reversed(graphemes(as_text(s))))


def strlen(s: Any) -> int:
    """Length in grapheme clusters, as Erlang's ``string:length`` (``'\\r\\n'`` is 1)."""
    return glen(as_text(s))


def substr(s: Any, start: Any, length: Any = None) -> str:
    """Slice from ``start`` (0-based, as Erlang ``string:slice``), optionally ``length`` long.

    Positions count grapheme clusters, as ``strlen`` does.
    """
    text, begin = as_text(s), as_int(start)
    if begin < 0:
        raise BadArg("start must not be negative")
    size = None if length is None else as_int(length)
    if size is not None and size < 0:
        raise BadArg("length must not be negative")
    chars: str | list[str] = text if text.isascii() and "\r" not in text else graphemes(text)
    part = chars[begin:] if size is None else chars[begin:begin + size]
    return part if isinstance(part, str) else "".join(part)


def split(s: Any, sep: Any, option: Any = "all") -> list[str]:
    """Split on ``sep``; empty parts are dropped unless the option ends in ``notrim``.

    Options: ``leading`` (split at the first separator), ``trailing`` (at the last), ``notrim``,
    ``leading_notrim``, ``trailing_notrim``.
    """
    text, pattern, opt = as_text(s), as_text(sep), as_text(option)
    if opt not in ("all", "notrim", "leading", "leading_notrim", "trailing", "trailing_notrim"):
        raise BadArg(f"unknown split option {opt!r}")
    # A separator matches whole grapheme clusters only, as in Erlang's string:split.
    if not pattern:
        parts = [text]
    elif opt.startswith(("leading", "trailing")):
        pos = gfind(text, pattern) if opt.startswith("leading") else grfind(text, pattern)
        parts = [text] if pos < 0 else [text[:pos], text[pos + len(pattern):]]
    else:
        parts = gsplit(text, pattern)
    if opt.endswith("notrim"):
        return parts
    return [p for p in parts if p]


def tokens(s: Any, separators: Any, option: Any = None) -> list[str]:
    """Split on any of the separator characters, dropping empty tokens.

    With ``'nocrlf'``, carriage returns and line feeds also separate.
    """
    text, seps = as_text(s), set(as_text(separators))
    if option is not None:
        if as_text(option) != "nocrlf":
            raise BadArg("the third argument of tokens() must be 'nocrlf'")
        seps |= {"\r", "\n"}
    out: list[str] = []
    current: list[str] = []
    for ch in text:
        if ch in seps:
            if current:
                out.append("".join(current))
                current = []
        else:
            current.append(ch)
    if current:
        out.append("".join(current))
    return out


def concat(*args: Any) -> str:
    """Concatenate as strings: ``concat(a, b)`` or ``concat([a, b, ...])``."""
    items = as_list(args[0]) if len(args) == 1 else args
    return "".join(values.to_str(i) for i in items)


def replace(s: Any, search: Any, repl: Any, where: Any = "all") -> str:
    """Replace ``search`` with ``repl``: everywhere, or only the first (``leading``) or last
    (``trailing``) occurrence.

    Fails, before building it, when the result would be longer than ``MAX_RESULT_SIZE``.
    """
    text, pattern, new, mode = as_text(s), as_text(search), as_text(repl), as_text(where)
    if not pattern:
        return text
    # Matches are on grapheme cluster boundaries, as in Erlang's string:replace.
    if mode == "all":
        parts = gsplit(text, pattern)
        count = len(parts) - 1
        check_size(len(text) + count * (len(new) - len(pattern)), "replaced length")
        return new.join(parts)
    if mode not in ("leading", "trailing"):
        raise BadArg(f"unknown replace option {mode!r}")
    pos = gfind(text, pattern) if mode == "leading" else grfind(text, pattern)
    return text if pos < 0 else text[:pos] + new + text[pos + len(pattern):]


def find(s: Any, search: Any, where: Any = "leading") -> str:
    """The rest of the string from the first (or, with ``trailing``, last) match; ``''`` if none."""
    text, pattern, mode = as_text(s), as_text(search), as_text(where)
    if mode not in ("leading", "trailing"):
        raise BadArg(f"unknown find option {mode!r}")
    # A match covers whole grapheme clusters, as in Erlang's string:find.
    pos = gfind(text, pattern) if mode == "leading" else grfind(text, pattern)
    return "" if pos < 0 else text[pos:]


def ascii_(s: Any) -> int:
    """The code of the first byte."""
    raw = as_text(s).encode("utf-8")
    if not raw:
        raise BadArg("empty string")
    return raw[0]


def rm_prefix(s: Any, prefix: Any) -> str:
    """The string without ``prefix`` when it starts with it; otherwise unchanged."""
    return as_text(s).removeprefix(as_text(prefix))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "lower": lower, "upper": upper, "trim": trim, "ltrim": ltrim, "rtrim": rtrim,
    "reverse": reverse, "strlen": strlen, "substr": substr, "split": split, "tokens": tokens,
    "concat": concat, "replace": replace, "find": find, "ascii": ascii_, "rm_prefix": rm_prefix,
}
ARITY: dict[str, tuple[int, int | None]] = {"concat": (1, 2)}

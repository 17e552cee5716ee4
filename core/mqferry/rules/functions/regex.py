"""Regular expression functions. Patterns are Python ``re`` syntax, which covers the PCRE
features rules use (classes, groups, anchors, lazy quantifiers)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from mqferry.rules.functions._args import BadArg, as_text

__all__ = ["FUNCTIONS"]


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise BadArg(f"invalid regular expression {pattern!r}: {exc}") from exc


def regex_match(s: Any, pattern: Any) -> bool:
    """Whether the pattern matches anywhere in the string."""
    return _compile(as_text(pattern)).search(as_text(s)) is not None


def _template(repl: str) -> Callable[[re.Match[str]], str]:
    # Erlang re:replace: `&` is the whole match, `\N` or `\g{N}` a group, `\&` and `\\` literals.
    parts: list[str | int] = []
    i = 0
    buf: list[str] = []
    while i < len(repl):
        ch = repl[i]
        if ch == "&":
            parts.append("".join(buf))
            buf = []
            parts.append(0)
        elif ch == "\\" and i + 1 < len(repl):
            nxt = repl[i + 1]
            m = re.match(r"\d+|g\{(\d+)\}|g(\d+)", repl[i + 1:])
            if m:
                parts.append("".join(buf))
                buf = []
                parts.append(int(m.group(1) or m.group(2) or m.group(0)))
                i += 1 + len(m.group(0))
                continue
            buf.append(nxt)
            i += 1
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))

    def expand(match: re.Match[str]) -> str:
        out: list[str] = []
        for part in parts:
            if isinstance(part, int):
                out.append(match.group(part) or "" if part <= (match.re.groups) else "")
            else:
                out.append(part)
        return "".join(out)
    return expand


def regex_replace(s: Any, pattern: Any, repl: Any) -> str:
    """Replace every match; ``&`` in the replacement is the match, ``\\1`` a group."""
    return _compile(as_text(pattern)).sub(_template(as_text(repl)), as_text(s))


def regex_extract(s: Any, pattern: Any) -> list[str]:
    """The captured groups of the first match (``[]`` with no match or no groups)."""
    m = _compile(as_text(pattern)).search(as_text(s))
    if m is None:
        return []
    return [g or "" for g in m.groups()]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "regex_match": regex_match,
    "regex_replace": regex_replace,
    "regex_extract": regex_extract,
}

r"""Regular expression functions: ``regex_match``, ``regex_replace``, ``regex_extract``.

EMQX matches with PCRE (Erlang's ``re``). A backtracking engine such as PCRE or Python's ``re``
takes exponential time on patterns like ``^(a+)+$``: a 40-byte payload would hold the process for
hours. Patterns therefore run on RE2 (``google-re2``), whose matching time is linear in the length
of the text. RE2 reads the PCRE syntax rules use: classes, POSIX and Unicode classes, numbered and
named groups (``(?P<n>...)`` and ``(?<n>...)``), anchors, ``\d \w \s \b`` (ASCII, as PCRE without
its ``unicode`` option), lazy quantifiers, ``(?i)``-style flags, ``\Q...\E``.

Patterns RE2 refuses (backreferences ``\1``, lookaround ``(?=`` ``(?!`` ``(?<=`` ``(?<!``, atomic
groups ``(?>``, possessive quantifiers ``a*+``, ``(?x)``, repetitions over 1000) run on the
backtracking ``regex`` package with a hard time limit of :data:`BACKTRACKING_TIMEOUT_S` per call.
A call that passes it fails with "regular expression ... exceeded its time limit", which the rule
counts as ``failed.exception``; later calls are not affected. Patterns neither engine accepts fail
with "invalid regular expression".

PCRE's end anchors are kept: ``$`` and ``\Z`` match at the end of the text and also before a final
newline. RE2's ``$`` only matches at the very end, so ``regex_match`` and ``regex_extract`` search
a text ending in a newline a second time without it. ``regex_replace`` on RE2 does not: there
``$`` and ``\Z`` only match at the very end of the text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from mqferry._rules.functions._args import BadArg, as_text

__all__ = ["BACKTRACKING_TIMEOUT_S", "FUNCTIONS"]

#: Seconds one call may spend matching a pattern that only the backtracking engine can run (the
#: ``regex`` package checks it while matching and may overrun it by about as much again).
BACKTRACKING_TIMEOUT_S = 0.1

_GROUP_REF = re.compile(r"\d+|g\{(\d+)\}|g(\d+)")


def _re2_options(re2: Any) -> Any:
    options = re2.Options()
    # RE2 writes every refused pattern to stderr otherwise; the refusal is handled here.
    options.log_errors = False
    return options


class _Regex:
    """A compiled pattern on RE2 or, with a time limit, on the backtracking engine."""

    def __init__(self, source: str, compiled: Any, *, linear: bool) -> None:
        self.source = source
        self.groups: int = compiled.groups
        self._compiled = compiled
        self._limits: dict[str, float] = {} if linear else {"timeout": BACKTRACKING_TIMEOUT_S}
        # Only RE2 needs the second search for PCRE's `$` before a final newline.
        self._retry_newline = linear and ("$" in source or "\\Z" in source)

    def search(self, text: str) -> Any:
        """The leftmost match, or None."""
        try:
            found = self._compiled.search(text, **self._limits)
        except TimeoutError:
            raise self._too_slow() from None
        if self._retry_newline and text.endswith("\n"):
            # A match that needs `$` before the newline starts where PCRE would find it.
            before = self._compiled.search(text[:-1])
            if before is not None and (found is None or before.start() < found.start()):
                return before
        return found

    def sub(self, repl: Callable[[Any], str], text: str) -> str:
        """``text`` with every match replaced by ``repl(match)``."""
        try:
            result: str = self._compiled.sub(repl, text, **self._limits)
        except TimeoutError:
            raise self._too_slow() from None
        return result

    def _too_slow(self) -> BadArg:
        return BadArg(f"regular expression {self.source!r} exceeded its time limit of "
                      f"{BACKTRACKING_TIMEOUT_S * 1000:.0f} ms")


def _end_of_text(pattern: str, replacement: str) -> str:
    r"""``pattern`` with PCRE's ``\Z`` (outside classes) written as ``replacement``."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            pair = pattern[i:i + 2]
            out.append(replacement if pair == "\\Z" and not in_class else pair)
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                if end >= 0:
                    out.append(pattern[i:end + 2])
                    i = end + 2
                    continue
            in_class = ch != "]"
        elif ch == "[":
            # `]` right after `[` or `[^` is a literal, not the end of the class.
            j = i + 1 + (pattern.startswith("^", i + 1))
            j += pattern.startswith("]", j)
            out.append(pattern[i:j])
            i, in_class = j, True
            continue
        out.append(ch)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> _Regex:
    # RE2 is imported by the first pattern: 2.6 MiB that a bridge whose rules use no regular
    # expression does not carry (``regex`` is loaded anyway, by the rule parser's lark).
    import re2
    import regex as backtracking

    has_z = "\\Z" in pattern
    try:
        # `\z` is the very end; a final newline is tried by the second search in _Regex.
        source = _end_of_text(pattern, "\\z") if has_z else pattern
        return _Regex(pattern, re2.compile(source, _re2_options(re2)), linear=True)
    except re2.error:
        pass
    try:
        # The `regex` package's `\Z` is the very end only; PCRE's also accepts a final newline.
        source = _end_of_text(pattern, "(?=\\n?\\Z)") if has_z else pattern
        # Same flags as RE2's defaults: ASCII classes, `$` at the end (or before a final
        # newline).
        compiled = backtracking.compile(source, backtracking.ASCII | backtracking.V0)
    except backtracking.error as exc:
        raise BadArg(f"invalid regular expression {pattern!r}: {exc}") from None
    return _Regex(pattern, compiled, linear=False)


def regex_match(s: Any, pattern: Any) -> bool:
    """Whether the pattern matches anywhere in the string."""
    return _compile(as_text(pattern)).search(as_text(s)) is not None


def _template(repl: str, groups: int) -> Callable[[Any], str]:
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
            m = _GROUP_REF.match(repl, i + 1)
            if m:
                parts.append("".join(buf))
                buf = []
                parts.append(int(m.group(1) or m.group(2) or m.group(0)))
                i = m.end()
                continue
            buf.append(repl[i + 1])
            i += 1
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))

    def expand(match: Any) -> str:
        out: list[str] = []
        for part in parts:
            if isinstance(part, int):
                out.append((match.group(part) or "") if part <= groups else "")
            else:
                out.append(part)
        return "".join(out)
    return expand


def regex_replace(s: Any, pattern: Any, repl: Any) -> str:
    """Replace every match; ``&`` in the replacement is the match, ``\\1`` a group."""
    compiled = _compile(as_text(pattern))
    return compiled.sub(_template(as_text(repl), compiled.groups), as_text(s))


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

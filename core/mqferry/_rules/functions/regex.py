r"""Regular expression functions: ``regex_match``, ``regex_replace``, ``regex_extract``.

EMQX matches with PCRE (Erlang's ``re``). A backtracking engine such as PCRE or Python's ``re``
takes exponential time on patterns like ``^(a+)+$``: a 40-byte payload would hold the process for
hours. Patterns therefore run on RE2 (``google-re2``), whose matching time is linear in the length
of the text. RE2 reads the PCRE syntax rules use: classes, POSIX and Unicode classes, numbered and
named groups (``(?P<n>...)`` and ``(?<n>...)``), anchors, ``\d \w \s \b`` (ASCII, as PCRE without
its ``unicode`` option), lazy quantifiers, ``(?i)``-style flags, ``\Q...\E``.

Patterns RE2 refuses for a feature it lacks (backreferences ``\1``, lookaround ``(?=`` ``(?!``
``(?<=`` ``(?<!``, atomic groups ``(?>``, possessive quantifiers ``a*+``, ``(?x)``) run on the
backtracking ``regex`` package with a hard time limit of :data:`BACKTRACKING_TIMEOUT_S` per call.
A call that passes it fails with "regular expression ... exceeded its time limit", which the rule
counts as ``failed.exception``; later calls are not affected. That engine releases the GIL while
it matches, and a rule whose pattern may need it (a pattern that is not a literal, or a literal RE2
refuses) is evaluated off the event loop, as a ``jq`` rule is (see
:mod:`mqferry._runtime.rules`); rules whose literal patterns RE2 runs stay on the loop.

Compiling is bounded too. A pattern longer than :data:`MAX_PATTERN_LENGTH` characters, or one RE2
finds too large for its memory budget, is refused; so is one bound for the backtracking engine
whose nested counted repetitions multiply past 1000, as RE2's do (``(a{1000}){2}``), or which
written out would be too large (see :mod:`mqferry._rules.functions._regex_bounds`): that engine
writes out counted repetitions while compiling. A literal pattern is compiled with the rule, so a
rule with an invalid or refused literal pattern is itself refused, naming the pattern; a pattern
computed per message fails that message ("invalid regular expression ...").

``regex_replace`` fails rather than build a result longer than
:data:`~mqferry._rules.functions._args.MAX_RESULT_SIZE` characters.

PCRE's end anchors are kept: ``$`` and ``\Z`` match at the end of the text and also before a final
newline. RE2's ``$`` only matches at the very end, so ``regex_match`` and ``regex_extract`` search
a text ending in a newline a second time without it. ``regex_replace`` on RE2 does not: there
``$`` and ``\Z`` only match at the very end of the text.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from mqferry._rules.functions._args import BadArg, as_text, check_size
from mqferry._rules.functions._regex_bounds import MAX_PATTERN_LENGTH, refusal
from mqferry._rules.functions.table import PER_MESSAGE, compile_check

__all__ = ["BACKTRACKING_TIMEOUT_S", "FUNCTIONS", "MAX_PATTERN_LENGTH", "REPLACE_TIMEOUT_S"]

#: Seconds one call may spend matching a pattern that only the backtracking engine can run (the
#: ``regex`` package checks it while matching and may overrun it by about as much again).
BACKTRACKING_TIMEOUT_S = 0.1

_GROUP_REF = re.compile(r"\d+|g\{(\d+)\}|g(\d+)")


#: RE2's memory budget for one pattern (its compiled program and its matching state); a pattern
#: that needs more is refused. An eighth of RE2's default: the cache below keeps up to
#: :data:`_RE2_CACHED` patterns, and a pattern can come with every message.
_RE2_MAX_MEM = 1 << 20
_RE2_CACHED = 64
#: Seconds one ``regex_replace`` may spend on its replacements (each one costs Python work).
REPLACE_TIMEOUT_S = BACKTRACKING_TIMEOUT_S


def _re2_options(re2: Any) -> Any:
    options = re2.Options()
    options.max_mem = _RE2_MAX_MEM
    # RE2 writes every refused pattern to stderr otherwise; the refusal is handled here.
    options.log_errors = False
    return options


class _Regex:
    """A compiled pattern on RE2 or, with a time limit, on the backtracking engine."""

    def __init__(self, source: str, compiled: Any, *, linear: bool) -> None:
        self.source = source
        self.groups: int = compiled.groups
        #: Whether RE2 runs it (in linear time); otherwise the backtracking engine does.
        self.linear = linear
        self._compiled = compiled
        # `concurrent`: the backtracking engine lets other threads run (the event loop) while it
        # matches.
        self._limits: dict[str, Any] = (
            {} if linear else {"timeout": BACKTRACKING_TIMEOUT_S, "concurrent": True})
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
        return BadArg(f"regular expression {_shown(self.source)} exceeded its time limit of "
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


def _shown(pattern: str) -> str:
    """``pattern`` quoted for a message, its middle left out when it is long."""
    if len(pattern) <= 100:
        return repr(pattern)
    return f"{pattern[:60]!r}...{pattern[-20:]!r} ({len(pattern)} characters)"


def _compile(pattern: str) -> _Regex:
    found = _compile_re2(pattern)
    return found if found is not None else _compile_backtracking(pattern)


@functools.lru_cache(maxsize=_RE2_CACHED)
def _compile_re2(pattern: str) -> _Regex | None:
    """``pattern`` on RE2, or None when RE2 refuses it for a feature it lacks."""
    # RE2 is imported by the first pattern: 2.6 MiB that a bridge whose rules use no regular
    # expression does not carry.
    import re2

    if len(pattern) > MAX_PATTERN_LENGTH:
        raise BadArg(f"regular expression {_shown(pattern)} refused: it is longer than "
                     f"{MAX_PATTERN_LENGTH} characters")
    try:
        # `\z` is the very end; a final newline is tried by the second search in _Regex.
        source = _end_of_text(pattern, "\\z") if "\\Z" in pattern else pattern
        return _Regex(pattern, re2.compile(source, _re2_options(re2)), linear=True)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        if isinstance(reason, bytes):  # the binding passes RE2's message on undecoded
            reason = reason.decode("utf-8", "replace")
        if str(reason).startswith("pattern too large"):
            # The backtracking engine would need yet more memory for it.
            raise BadArg(f"regular expression {_shown(pattern)} refused: it is too large "
                         f"(RE2 needs more than its {_RE2_MAX_MEM >> 20} MiB for it)") from None
    return None


# Fewer than RE2's: one of these patterns may hold a few MiB (the engine writes out counted
# repetitions, up to the bounds of _regex_bounds).
@functools.lru_cache(maxsize=16)
def _compile_backtracking(pattern: str) -> _Regex:
    # ``regex`` is loaded anyway, by the rule parser's lark.
    import regex as backtracking

    why = refusal(pattern)
    if why is not None:
        raise BadArg(f"regular expression {_shown(pattern)} refused: {why}")
    try:
        # The `regex` package's `\Z` is the very end only; PCRE's also accepts a final newline.
        source = _end_of_text(pattern, "(?=\\n?\\Z)") if "\\Z" in pattern else pattern
        # Same flags as RE2's defaults: ASCII classes, `$` at the end (or before a final
        # newline).
        compiled = backtracking.compile(source, backtracking.ASCII | backtracking.V0)
    except (backtracking.error, ValueError) as exc:
        raise BadArg(f"invalid regular expression {_shown(pattern)}: {exc}") from None
    return _Regex(pattern, compiled, linear=False)


def _pattern_check(args: Sequence[Any]) -> bool:
    """Compile a literal pattern (the second argument) with the rule: refuse the rule if it is
    invalid; a rule whose pattern may need the backtracking engine is evaluated off the loop."""
    pattern = args[1]
    if pattern is PER_MESSAGE:
        return True
    return not _compile(as_text(pattern, "pattern")).linear


@compile_check(_pattern_check)
def regex_match(s: Any, pattern: Any) -> bool:
    """Whether the pattern matches anywhere in the string."""
    return _compile(as_text(pattern)).search(as_text(s)) is not None


def _template(repl: str, groups: int) -> Callable[[Any], list[str]]:
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

    def expand(match: Any) -> list[str]:
        # The pieces, not yet joined: the caller bounds their length first.
        out: list[str] = []
        for part in parts:
            if isinstance(part, int):
                out.append((match.group(part) or "") if part <= groups else "")
            else:
                out.append(part)
        return out
    return expand


@compile_check(_pattern_check)
def regex_replace(s: Any, pattern: Any, repl: Any) -> str:
    """Replace every match; ``&`` in the replacement is the match, ``\\1`` a group.

    Fails (before building it) when the result would be longer than ``MAX_RESULT_SIZE``.
    """
    compiled = _compile(as_text(pattern))
    text = as_text(s)
    expand = _template(as_text(repl), compiled.groups)
    size = len(text)
    count = 0
    deadline = time.monotonic() + REPLACE_TIMEOUT_S

    def bounded(match: Any) -> str:
        nonlocal size, count
        pieces = expand(match)
        # The length of the result so far plus the text not yet searched.
        size += sum(map(len, pieces)) - (match.end() - match.start())
        check_size(size, "replaced length")
        count += 1
        if not count & 255 and time.monotonic() > deadline:
            raise BadArg(f"regular expression {_shown(compiled.source)} exceeded its time limit "
                         f"of {REPLACE_TIMEOUT_S * 1000:.0f} ms after {count} replacements")
        return "".join(pieces)
    return compiled.sub(bounded, text)


@compile_check(_pattern_check)
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

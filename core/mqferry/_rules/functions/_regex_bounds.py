r"""The bounds a pattern must keep before the backtracking ``regex`` engine compiles it.

The ``regex`` package writes out every counted repetition while compiling, in the calling thread
and with no limit: ``((a{1000}){1000}){1000}`` asked for 23 GB, and ``((a{1000}){1000}){3}``
took 2.2 s and 1.1 GB. RE2 refuses such patterns while parsing them (nested counted repetitions
whose counts multiply past 1000) and bounds the program it compiles by its ``max_mem``. A pattern
RE2 refuses for a feature it lacks (a backreference, lookaround) reaches the backtracking engine
only when :func:`refusal` finds nothing wrong with it:

- at most :data:`MAX_PATTERN_LENGTH` characters;
- counted repetitions (``{n}``, ``{n,}``, ``{n,m}``, ``{,m}``) that, nested, multiply to at most
  :data:`MAX_REPEAT`, as RE2;
- at most :data:`MAX_EXPANDED_SIZE` items once every counted repetition is written out;
- the extended flag ``x`` only in flags at the start of the pattern (``(?x)``, ``(?ix)``):
  the engine applies an ``x`` met later to the whole pattern, so what is whitespace and what is a
  comment would depend on text read after it; and no ``V1`` flag, whose syntax differs.

The scanner reads escapes, classes, groups and quantifiers. Where it cannot tell it counts more,
never less: a group's prefix (``?:``, ``?<name>``) counts as items, and ``{`` is read as a
quantifier wherever it could be one.
"""

from __future__ import annotations

import re

__all__ = ["MAX_EXPANDED_SIZE", "MAX_PATTERN_LENGTH", "MAX_REPEAT", "refusal"]

#: The longest pattern accepted, in characters (compiling 10 000 characters of alternatives
#: takes the ``regex`` package about 50 ms).
MAX_PATTERN_LENGTH = 10_000
#: The most copies nested counted repetitions may make of what they repeat (RE2's limit).
MAX_REPEAT = 1000
#: The most items a pattern may have with its counted repetitions written out. At this bound
#: the ``regex`` package compiles in about 5 ms and keeps about 2.5 MiB per pattern.
MAX_EXPANDED_SIZE = 10_000

_SPACE = frozenset(" \t\n\r\f\v")
# Escapes whose argument is in braces: `\p{L}` is one item, not `\p` repeated.
_BRACED_ESCAPES = frozenset("xpPNgkou")
_FLAG_CHARS = frozenset("abefiLmnprsuUwxV01-")
_POSIX_CLASS = re.compile(r"\[:\^?[A-Za-z]*:\]")
_LEADING_FLAGS = re.compile(r"\(\?[A-Za-z01]*\)")
# A count with more digits is over any limit; it is read as 10**18 (int() of thousands of digits
# is slow).
_DIGITS_CAP = 18


class _Refused(Exception):
    """Why a pattern is refused (the message)."""


def refusal(pattern: str) -> str | None:
    """Why the backtracking engine must not compile ``pattern``, or None when it may."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"it is {len(pattern)} characters long, over the limit of {MAX_PATTERN_LENGTH}"
    start, flags = 0, ""
    while (m := _LEADING_FLAGS.match(pattern, start)) is not None:
        flags += m.group()
        start = m.end()
    if "V1" in flags:
        return "the V1 flag is not supported"
    try:
        _Scanner(pattern, verbose="x" in flags).run(start)
    except _Refused as exc:
        return str(exc)
    return None


class _Scanner:
    """Reads a pattern once, keeping its size and the repetition counts around each part."""

    def __init__(self, pattern: str, *, verbose: bool) -> None:
        self.p = pattern
        self.verbose = verbose
        self.size = 0
        # While a group is open: the enclosing sequence's (size, largest repetition product).
        self.outer: list[tuple[int, int]] = []
        self.total, self.product = 0, 1
        # The item a quantifier would repeat: (size, repetition product); None at the start of
        # a sequence.
        self.last: tuple[int, int] | None = None

    def run(self, i: int) -> None:
        while i < len(self.p):
            i = self._step(i)

    def _step(self, i: int) -> int:
        p, ch = self.p, self.p[i]
        if self.verbose and (ch in _SPACE or ch == "#"):
            end = i + 1 if ch != "#" else p.find("\n", i) + 1
            end = end if end > 0 else len(p)
        elif ch == "\\" and p.startswith("Q", i + 1):
            end = self._quoted(i)
        elif ch in "*+?":
            # not counted: the engine does not write these out
            end = _after_quantifier(p, i + 1)
        elif ch == "{" and self.last is not None and (
                found := _quantifier(p, i, self.verbose)) is not None:
            self._repeat(found[1])
            end = _after_quantifier(p, found[0])
        elif ch == "|":
            self._add(1)
            self.last = None
            end = i + 1
        elif ch == "(":
            end = self._open(i)
        elif ch == ")" and self.outer:
            self._close()
            end = i + 1
        else:
            end = _escape_end(p, i) if ch == "\\" else _class_end(p, i) if ch == "[" else i + 1
            self._add(1)
            self.last = (1, 1)
        return end

    def _close(self) -> None:
        inner = (self.total + 1, self.product)
        self.total, self.product = self.outer.pop()
        self.total += inner[0] - 1
        self._add(1)
        self.product = max(self.product, inner[1])
        self.last = inner

    def _add(self, count: int) -> None:
        self.size += count
        self.total += count
        if self.size > MAX_EXPANDED_SIZE:
            raise _Refused(f"written out, its counted repetitions make more than "
                           f"{MAX_EXPANDED_SIZE} items ({self.size} so far)")

    def _quoted(self, i: int) -> int:
        # `\Q...\E`: every character a literal
        end = self.p.find("\\E", i + 2)
        end = len(self.p) if end < 0 else end
        if end > i + 2:
            self._add(end - (i + 2))
            self.last = (1, 1)
        return end + 2

    def _repeat(self, count: int) -> None:
        assert self.last is not None
        copies = max(count, 1)
        item_size, item_product = self.last
        if copies * item_product > MAX_REPEAT:
            raise _Refused(f"its counted repetitions repeat a part {copies * item_product} "
                           f"times, over the limit of {MAX_REPEAT}")
        self.last = (item_size * copies, item_product * copies)
        self.product = max(self.product, self.last[1])
        self._add(item_size * (copies - 1))

    def _open(self, i: int) -> int:
        p = self.p
        if p.startswith("(?#", i):
            end = p.find(")", i)
            return len(p) if end < 0 else end + 1
        flags = _flag_group(p, i)
        if flags is None:
            end = i + 1
        else:
            end, letters, scoped = flags
            if "x" in letters:
                raise _Refused("the x flag is only supported at the start of the pattern")
            if "V" in letters:
                raise _Refused("the V0 and V1 flags are not supported")
            if not scoped:
                return end
        self.outer.append((self.total, self.product))
        self.total, self.product, self.last = 0, 1, None
        return end


def _after_quantifier(p: str, i: int) -> int:
    """Past a lazy ``?`` or possessive ``+`` at ``i``."""
    return i + 1 if p.startswith(("?", "+"), i) else i


def _quantifier(p: str, i: int, verbose: bool) -> tuple[int, int] | None:
    """The end and the largest count of a ``{n}``, ``{n,}``, ``{n,m}``, ``{,m}`` at ``i``."""
    n = len(p)
    j = i + 1
    numbers: list[str] = [""]
    while j < n:
        ch = p[j]
        if ch.isascii() and ch.isdigit():
            numbers[-1] += ch
        elif ch == "," and len(numbers) == 1:
            numbers.append("")
        elif ch == "}":
            break
        elif not (verbose and ch in _SPACE):
            return None
        j += 1
    else:
        return None
    if not any(numbers):
        return None
    counts = [int(d) if len(d.lstrip("0")) <= _DIGITS_CAP else 10**_DIGITS_CAP
              for d in numbers if d]
    return j + 1, max(counts)


def _flag_group(p: str, i: int) -> tuple[int, str, bool] | None:
    """For ``(?flags)`` or ``(?flags:`` at ``i``: the end, the letters, whether it is scoped."""
    if not p.startswith("(?", i):
        return None
    j = i + 2
    while j < len(p) and p[j] in _FLAG_CHARS:
        j += 1
    if j == i + 2 or j >= len(p) or p[j] not in "):":
        return None
    return j + 1, p[i + 2:j], p[j] == ":"


def _escape_end(p: str, i: int) -> int:
    if i + 1 >= len(p):
        return len(p)
    if p[i + 1] in _BRACED_ESCAPES and p.startswith("{", i + 2):
        end = p.find("}", i + 3)
        return len(p) if end < 0 else end + 1
    return i + 2


def _class_end(p: str, i: int) -> int:
    n = len(p)
    j = i + 1
    j += p.startswith("^", j)
    # `]` right after `[` or `[^` is a literal, not the end of the class.
    j += p.startswith("]", j)
    while j < n:
        ch = p[j]
        if ch == "\\":
            j += 2
        elif ch == "]":
            return j + 1
        elif (m := _POSIX_CLASS.match(p, j)) is not None:
            j = m.end()
        else:
            j += 1
    return n

"""Grapheme clusters: the characters EMQX's string functions count and slice by.

Erlang's ``string`` module (``string:length``, ``string:slice``, ``string:reverse``,
``string:pad``) works on extended grapheme clusters, so ``"\\r\\n"`` is one character and so is
``"e"`` followed by a combining accent. The ``regex`` package (already a dependency, for the
``regex_*`` functions) matches one cluster with ``\\X``; no other library is needed.
"""

from __future__ import annotations

import regex

__all__ = ["glen", "graphemes"]

_CLUSTER = regex.compile(r"\X")


def _simple(text: str) -> bool:
    # Printable ASCII without CR: every code point is a cluster of its own (the common case,
    # answered without the regex).
    return text.isascii() and "\r" not in text


def graphemes(text: str) -> list[str]:
    """The grapheme clusters of ``text``, in order."""
    if _simple(text):
        return list(text)
    clusters: list[str] = _CLUSTER.findall(text)
    return clusters


def glen(text: str) -> int:
    """How many grapheme clusters ``text`` has."""
    if _simple(text):
        return len(text)
    return len(_CLUSTER.findall(text))

"""Grapheme clusters: the characters EMQX's string functions count and slice by.

Erlang's ``string`` module (``string:length``, ``string:slice``, ``string:reverse``,
``string:pad``) works on extended grapheme clusters, so ``"\\r\\n"`` is one character and so is
``"e"`` followed by a combining accent. The ``regex`` package (already a dependency, for the
``regex_*`` functions) matches one cluster with ``\\X``; no other library is needed.
"""

from __future__ import annotations

import regex

__all__ = ["gfind", "glen", "graphemes", "grfind", "gsplit"]

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


def _edges(text: str) -> set[int] | None:
    """The offsets where clusters start or end, or None when every code point is a cluster."""
    if _simple(text):
        return None
    edges, pos = {0}, 0
    for cluster in _CLUSTER.findall(text):
        pos += len(cluster)
        edges.add(pos)
    return edges


def gfind(text: str, pattern: str, start: int = 0) -> int:
    """The first offset from ``start`` where ``pattern`` matches whole clusters, or -1.

    As Erlang's ``string:find``: ``'e'`` is not found in ``'e\\u030a'`` (e with a ring above).
    """
    edges = _edges(text)
    pos = text.find(pattern, start)
    while edges is not None and pos >= 0 and not (pos in edges and pos + len(pattern) in edges):
        pos = text.find(pattern, pos + 1)
    return pos


def grfind(text: str, pattern: str) -> int:
    """The last offset where ``pattern`` matches whole clusters, or -1."""
    edges = _edges(text)
    pos = text.rfind(pattern)
    while edges is not None and pos >= 0 and not (pos in edges and pos + len(pattern) in edges):
        pos = text.rfind(pattern, 0, pos + len(pattern) - 1)
    return pos


def gsplit(text: str, pattern: str) -> list[str]:
    """``text`` split at every match of ``pattern`` on cluster boundaries."""
    if _simple(text):
        return text.split(pattern)
    parts, begin = [], 0
    pos = gfind(text, pattern)
    while pos >= 0:
        parts.append(text[begin:pos])
        begin = pos + len(pattern)
        pos = gfind(text, pattern, begin)
    parts.append(text[begin:])
    return parts

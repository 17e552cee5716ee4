"""Kafka's rules for topic names, checked locally so that a bad name never reaches the broker."""

from __future__ import annotations

import re

_TOPIC_CHARS = re.compile(r"[a-zA-Z0-9._-]+")
#: Kafka's limit on a topic name's length
MAX_TOPIC_LENGTH = 249


def topic_problem(name: str) -> str | None:
    """Why ``name`` is not a valid Kafka topic name (``None``: it is valid)."""
    if not name:
        return "the topic name is empty"
    if len(name) > MAX_TOPIC_LENGTH:
        return f"the topic name has {len(name)} characters (at most {MAX_TOPIC_LENGTH})"
    if name in (".", ".."):
        return f"{name!r} is not allowed as a topic name"
    if _TOPIC_CHARS.fullmatch(name) is None:
        bad = sorted({c for c in name if not _TOPIC_CHARS.fullmatch(c)})[:5]
        return (f"the topic name {name[:80]!r} has characters Kafka does not allow "
                f"({' '.join(repr(c) for c in bad)}; allowed: a-z A-Z 0-9 . _ -)")
    return None

"""Message accessors: functions that read the event (``clientid()``, ``topic(2)`` ...)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mqferry._rules.event import Event
from mqferry._rules.functions._args import BadArg, as_int, as_list, as_text
from mqferry._rules.functions.table import needs_event
from mqferry._rules.paths import nested_get
from mqferry._rules.topic import topic_matches

__all__ = ["FUNCTIONS"]


def _column(name: str) -> Callable[..., Any]:
    def accessor(event: Mapping[str, Any]) -> Any:
        return event.get(name)
    accessor.__name__ = name
    accessor.__doc__ = f"The ``{name}`` column."
    return needs_event(accessor)


@needs_event
def flags(event: Mapping[str, Any]) -> Any:
    """The message flags map (``{}`` when absent)."""
    value = event.get("flags")
    return {} if value is None else value


@needs_event
def flag(event: Mapping[str, Any], name: Any) -> Any:
    """One message flag, e.g. ``flag('retain')``."""
    value = event.get("flags")
    return value.get(as_text(name)) if isinstance(value, dict) else None


@needs_event
def topic(event: Mapping[str, Any], level: Any = None) -> Any:
    """The topic, or its ``level``-th level (1-based)."""
    value = event.get("topic")
    if level is None or value is None:
        return value
    levels = as_text(value).split("/")
    index = as_int(level)
    if not 1 <= index <= len(levels):
        raise BadArg(f"topic level {index} out of range")
    return levels[index - 1]


@needs_event
def payload(event: Mapping[str, Any], path: Any = None) -> Any:
    """The payload, or the value at a dotted ``path`` of the JSON-decoded payload."""
    value = event.get("payload")
    if path is None:
        return value
    if isinstance(event, Event):
        value = event.decoded_payload()
    if not isinstance(value, dict):
        return None
    return nested_get(value, as_text(path).split("."))


def _find(filters: Any, topic_: Any, match: Callable[[str, str], bool]) -> Any:
    for entry in as_list(filters):
        if isinstance(entry, dict) and isinstance(entry.get("topic"), str) and match(
            entry["topic"], as_text(topic_)
        ):
            return entry
    return None


def contains_topic(filters: Any, topic_: Any, qos: Any = None) -> bool:
    """Whether a list of ``{"topic": ..., "qos": ...}`` holds exactly this topic (and QoS)."""
    found = _find(filters, topic_, lambda f, t: f == t)
    return found is not None and (qos is None or found.get("qos") == qos)


def contains_topic_match(filters: Any, topic_: Any, qos: Any = None) -> bool:
    """Whether a list of ``{"topic": ..., "qos": ...}`` holds a filter matching the topic."""
    found = _find(filters, topic_, topic_matches)
    return found is not None and (qos is None or found.get("qos") == qos)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "msgid": _column("id"),
    "qos": _column("qos"),
    "clientid": _column("clientid"),
    "username": _column("username"),
    "peerhost": _column("peerhost"),
    "clientip": _column("peerhost"),
    "flags": flags,
    "flag": flag,
    "topic": topic,
    "payload": payload,
    "contains_topic": contains_topic,
    "contains_topic_match": contains_topic_match,
}

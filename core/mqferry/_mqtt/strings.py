"""What an MQTT string (a topic, a user property, a content type ...) must not hold.

Checked before a PUBLISH is written: a broker that receives a string it refuses ends the session,
and one that the client sends again after each reconnect never stays up.
"""

from __future__ import annotations

import re

__all__ = ["MAX_FILTER_LEVELS", "MAX_STRING", "filter_problem", "string_problem", "topic_problem"]

#: The characters refused: NUL, the C0 and C1 control characters and DEL, surrogates, and the
#: Unicode noncharacters (U+FDD0-U+FDEF, and the last two code points of every plane). MQTT 5
#: (1.5.4) forbids the first and says a string should not hold the others, a broker may close
#: the connection when it does; Mosquitto (2.0) does, for every one of them
#: (tests/integration/test_mqtt_publish_validation.py).
_REFUSED = re.compile(  # (surrogates by chr(): mypyc takes none in a literal)
    "[\x00-\x1f\x7f-\x9f" + chr(0xD800) + "-" + chr(0xDFFF) + "\ufdd0-\ufdef" + "".join(
        chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(17)) + "]")

#: The longest MQTT string, in bytes of UTF-8.
MAX_STRING = 65535
#: The most levels a topic filter may have: EMQX's default ``max_topic_levels``. Mosquitto
#: ends the connection ("Malformed packet") on a SUBSCRIBE or UNSUBSCRIBE of more than 201.
MAX_FILTER_LEVELS = 128


def string_problem(text: str) -> str | None:
    """Why ``text`` cannot be sent as an MQTT string, or ``None`` when it can.

    A character a broker refuses (see :data:`_REFUSED`), or more than 65535 bytes of UTF-8.
    """
    if text.isascii() and text.isprintable():  # the common case: one pass in C, no regex
        if len(text) > MAX_STRING:
            return f"it is longer than {MAX_STRING} bytes ({len(text)})"
        return None
    bad = _REFUSED.search(text)
    if bad is not None:
        return (f"it contains the character U+{ord(bad.group()):04X} at {bad.start()}, "
                "which MQTT brokers refuse")
    size = len(text.encode("utf-8"))
    if size > MAX_STRING:
        return f"it is longer than {MAX_STRING} bytes ({size})"
    return None


def topic_problem(topic: str) -> str | None:
    """Why ``topic`` cannot be published to, or ``None`` when it can.

    Empty, a wildcard (``+``, ``#``), or not a valid MQTT string (:func:`string_problem`).
    """
    if "+" in topic or "#" in topic:
        return "it contains a wildcard (+ or #)"
    if not topic:
        return "it is empty"
    return string_problem(topic)


def filter_problem(topic_filter: str) -> str | None:
    """Why ``topic_filter`` cannot be subscribed to, or ``None`` when it can.

    Empty, a wildcard that is not a whole level (``a/b#``, ``a/+x``), ``#`` before the last
    level, more than :data:`MAX_FILTER_LEVELS` levels, or not a valid MQTT string. A broker
    answers such a SUBSCRIBE by closing the connection (Mosquitto does), so the session would
    never stay up.
    """
    if not topic_filter:
        return "it is empty"
    levels = topic_filter.split("/")
    if len(levels) > MAX_FILTER_LEVELS:
        return (f"it has {len(levels)} levels, more than {MAX_FILTER_LEVELS} (EMQX's default "
                "max_topic_levels; Mosquitto refuses more than 201)")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return "'#' must be a whole level, and the last one (as in a/b/#)"
        if "+" in level and level != "+":
            return "'+' must be a whole level (as in a/+/c)"
    return string_problem(topic_filter)

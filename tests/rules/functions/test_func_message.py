"""Message accessor functions that read the event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("clientid()", "c_emqx"),
        ("username()", "u_emqx"),
        ("qos()", 1),
        ("topic()", "t/a"),
        ("topic(2)", "a"),
        ("peerhost()", "127.0.0.1"),
        ("clientip()", "127.0.0.1"),
        ("msgid()", "0005F8F84FFFAFB9F44200000D810002"),
        ("flag('retain')", False),
        ("flags()", {"retain": False, "dup": False}),
        ("payload('nested.a.b')", "deep"),
        ("contains_topic([map_put('topic', 't/a', map_new())], 't/a')", True),
        ("contains_topic_match([map_put('topic', 't/#', map_new())], 't/a')", True),
        ("contains_topic_match([map_put('topic', 'x/#', map_new())], 't/a')", False),
    ],
)
def test_message_accessors(expr: Callable[..., Any], sql: str, expected: Any) -> None:
    assert expr(sql) == expected

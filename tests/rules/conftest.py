"""Fixtures for the rule engine tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mqferry._rules import compile_sql

SAMPLE_PAYLOAD = (
    b'{"temp": 25.5, "hum": 40, "name": "dev-1", "arr": [1, 2, 3], '
    b'"sensors": [{"idx": 0, "v": 1}, {"idx": 1, "v": 2}, {"idx": 2, "v": 3}], '
    b'"nested": {"a": {"b": "deep"}}, "flag": true, "nothing": null, "num_str": "12"}'
)


def make_event(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "0005F8F84FFFAFB9F44200000D810002",
        "clientid": "c_emqx",
        "username": "u_emqx",
        "payload": SAMPLE_PAYLOAD,
        "peerhost": "127.0.0.1",
        "topic": "t/a",
        "qos": 1,
        "flags": {"retain": False, "dup": False},
        "headers": {"proto_ver": 5},
        "pub_props": {"User-Property": {"foo": "bar"}},
        "timestamp": 1700000000000,
        "publish_received_at": 1700000000000,
        "node": "mqferry@127.0.0.1",
    }
    event.update(overrides)
    return event


@pytest.fixture(name="make_event")
def make_event_fixture() -> Callable[..., dict[str, Any]]:
    """The sample MQTT message factory: ``make_event(qos=0)`` overrides columns."""
    return make_event


@pytest.fixture
def expr() -> Callable[..., Any]:
    """Evaluate one SQL expression: ``expr("upper('a')")`` is the value SELECT gives it."""

    def run(text: str, **overrides: Any) -> Any:
        rule = compile_sql(f'SELECT {text} AS r FROM "#"')
        out = rule.apply(make_event(**overrides))
        assert isinstance(out, dict)
        return out.get("r")

    return run

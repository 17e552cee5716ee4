"""Failure isolation on the data path, with in-memory twins.

A rule evaluation or an action's submit that raises, whatever the exception, fails that event or
that output alone: it is counted with its reason, logged (rate-limited), and the message's ticket
is sealed and released, so the ack window moves on.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from mqferry.config import validate_config
from mqferry.plugins import load_plugins
from mqferry.runtime import App
from mqferry.templates import Template
from mqferry.testing import RecordingAction


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


def build(plugins, rules, tmp_path, **extra):
    data = {
        "connectors": {"kafka_consumer": {"c": {"bootstrap_hosts": "127.0.0.1:1"}}},
        "sources": {"kafka_consumer": {"src": {"connector": "c",
                                               "parameters": {"topic": "k"}}}},
        "rules": rules,
        **extra,
    }
    cfg = validate_config(data, plugins.registries(), plugins.function_table())
    app = App(cfg, data_dir=tmp_path)
    app._accepting = True
    return app


def message(topic, payload, mid=1, qos=1):
    return SimpleNamespace(topic=topic, payload=payload, qos=qos, mid=mid, retain=False,
                           dup=False, properties=None)


def deep(depth):
    text = "1"
    for _ in range(depth):
        text = f"[{text}]"
    return text


class TemplateAction(RecordingAction):
    """Renders each output with a value template before keeping it, as a Kafka action does."""

    def __init__(self, action_id="template:x", value="${.}"):
        super().__init__(action_id)
        self.template = Template(value)

    def submit(self, output, delivery):
        self.metrics.inc("matched")
        self.template.render_bytes(output)  # raises on what it cannot render
        super().submit(output, delivery)


class RaisingAction(RecordingAction):
    """Raises from submit, after settling the delivery when ``settle_first``."""

    def __init__(self, action_id="raising:x", *, exc=None, settle_first=None):
        super().__init__(action_id)
        self.exc = exc or TypeError("boom")
        self.settle_first = settle_first

    def submit(self, output, delivery):
        if self.settle_first == "secured":
            delivery.secured()
        elif self.settle_first == "failed":
            delivery.failed("failed.other")
        raise self.exc


class ExplodingRule:
    """A compiled rule whose evaluation raises something that is not a RuleError."""

    def __init__(self, compiled, exc):
        self._compiled, self._exc = compiled, exc
        self.blocking = False

    def run(self, event):
        raise self._exc

    def __getattr__(self, name):
        return getattr(self._compiled, name)


def acked_mids(app):
    acked: list[int] = []
    app.mqtt.acks._send_acks = lambda acks: acked.extend(mid for mid, _ in acks)
    return acked


def feed(app, topic, payloads, first_mid=1):
    for mid, payload in enumerate(payloads, first_mid):
        app._on_message(message(topic, payload, mid), app.mqtt.acks.open(mid, 1))


async def test_a_poison_message_the_action_cannot_render_fails_alone(plugins, tmp_path):
    app = build(plugins, {"r": {"sql": "SELECT 'deep' as kt, payload.d as d FROM \"deep/#\""}},
                tmp_path)
    action = TemplateAction()
    app.rules["r"].actions = [action]
    acked = acked_mids(app)
    feed(app, "deep/1", [f'{{"d": {deep(300)}}}'.encode()])
    feed(app, "deep/1", [f'{{"d": {i}}}'.encode() for i in range(100)], first_mid=2)
    assert acked == list(range(1, 102))
    assert [o["d"] for o in action.outputs] == list(range(100))
    rule = app.rules["r"].metrics.snapshot()
    assert (rule["actions.total"], rule["actions.success"], rule["actions.failed"]) == (
        101, 100, 1)
    assert action.metrics.get("failed.exception") == 1


async def test_any_exception_from_submit_fails_that_output_only(plugins, tmp_path, caplog):
    app = build(plugins, {"r": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path)
    broken, good = RaisingAction(exc=KeyError("k")), RecordingAction()
    app.rules["r"].actions = [broken, good]
    acked = acked_mids(app)
    with caplog.at_level(logging.WARNING, logger="mqferry.runtime"):
        feed(app, "t/1", [b"a", b"b", b"c"])
    assert acked == [1, 2, 3]
    assert [o["payload"] for o in good.outputs] == ["a", "b", "c"]
    assert broken.metrics.get("failed") == 3 and broken.metrics.get("failed.exception") == 3
    rule = app.rules["r"].metrics.snapshot()
    assert (rule["actions.success"], rule["actions.failed"]) == (3, 3)
    # rate-limited: one line for the three, naming the rule, the action, topic and exception
    lines = [r.getMessage() for r in caplog.records if "raising:x" in r.getMessage()]
    assert len(lines) == 1
    assert "rule r" in lines[0] and "'t/1'" in lines[0] and "KeyError" in lines[0]


@pytest.mark.parametrize("settle_first", ["secured", "failed"])
async def test_a_submit_that_settles_then_raises_is_counted_once(plugins, tmp_path,
                                                                 settle_first):
    app = build(plugins, {"r": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path)
    app.rules["r"].actions = [RaisingAction(settle_first=settle_first)]
    acked = acked_mids(app)
    feed(app, "t/1", [b"a", b"b"])
    assert acked == [1, 2]
    rule = app.rules["r"].metrics.snapshot()
    assert rule["actions.success"] + rule["actions.failed"] == 2
    assert len(app.mqtt.acks) == 0


@pytest.mark.parametrize("exc", [TypeError("not a RuleError"), RecursionError("deep"),
                                 ZeroDivisionError("x")])
async def test_any_exception_from_the_evaluation_fails_that_rule_alone(plugins, tmp_path,
                                                                       exc, caplog):
    app = build(plugins, {"bad": {"sql": 'SELECT payload FROM "t/#"'},
                          "good": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path)
    bad = app.rules["bad"]
    bad.compiled = ExplodingRule(bad.compiled, exc)
    out = RecordingAction()
    bad.actions, app.rules["good"].actions = [RecordingAction("unused:x")], [out]
    acked = acked_mids(app)
    with caplog.at_level(logging.WARNING, logger="mqferry.runtime"):
        feed(app, "t/1", [b"a", b"b"])
    assert acked == [1, 2]
    assert [o["payload"] for o in out.outputs] == ["a", "b"]
    m = bad.metrics.snapshot()
    assert (m["matched"], m["failed"], m["failed.exception"]) == (2, 2, 2)
    [line] = [r.getMessage() for r in caplog.records if "rule bad" in r.getMessage()]
    assert type(exc).__name__ in line and "'t/1'" in line


async def test_a_message_that_cannot_be_turned_into_an_event_is_still_acknowledged(
        plugins, tmp_path):
    app = build(plugins, {"r": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path)
    acked = acked_mids(app)
    broken = SimpleNamespace(topic="t/1", payload=b"x", qos=1, mid=7, retain=False, dup=False,
                             properties=SimpleNamespace(UserProperty=42))  # not pairs
    app._on_message(broken, app.mqtt.acks.open(7, 1))
    assert acked == [7]


async def test_dispatch_completes_when_an_action_raises(plugins, tmp_path):
    app = build(plugins, {"k": {"sql": 'SELECT value FROM "$sources/kafka_consumer:src"'}},
                tmp_path)
    app.rules["k"].actions = [RaisingAction()]
    await asyncio.wait_for(app.dispatch({"event": "$bridges/kafka_consumer:src",
                                         "value": "v"}), 1)
    assert app.rules["k"].metrics.get("actions.failed") == 1


async def test_at_most_once_acks_even_when_submit_raises(plugins, tmp_path):
    app = build(plugins, {"r": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path,
                mqtt={"delivery": "at_most_once"})
    app.rules["r"].actions = [RaisingAction()]
    acked = acked_mids(app)
    feed(app, "t/1", [b"a", b"b"])
    assert acked == [1, 2]


async def test_a_stalled_ack_makes_the_mqtt_health_connecting_with_the_holder(
        plugins, tmp_path):
    from mqferry.types import HealthStatus, Status

    app = build(plugins, {"r": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path)
    slow = RecordingAction("slow:x", hold=True)
    slow.metrics.gauge("inflight", lambda: len(slow.pending))
    app.actions["slow:x"] = slow
    app.rules["r"].actions = [slow]
    app.mqtt._status = HealthStatus(Status.CONNECTED)  # the session itself is up
    app.ack_stall_after = 0.2
    feed(app, "t/1", [b"a"])
    assert (await app.mqtt_health()).status is Status.CONNECTED
    await asyncio.sleep(0.3)
    health = (await app.status())["mqtt"]
    assert health.status is Status.CONNECTING
    assert "acknowledgements stalled" in health.reason
    assert "slow:x (0 queued, 1 in flight)" in health.reason
    slow.release_all()
    assert (await app.mqtt_health()).status is Status.CONNECTED


async def test_a_moving_ack_window_stays_connected(plugins, tmp_path):
    from mqferry.types import HealthStatus, Status

    app = build(plugins, {"r": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path)
    slow = RecordingAction("slow:x", hold=True)
    app.rules["r"].actions = [slow]
    app.mqtt._status = HealthStatus(Status.CONNECTED)
    app.ack_stall_after = 0.2
    for mid in range(1, 6):
        feed(app, "t/1", [b"a"], first_mid=mid)
        slow.pending.pop(0).secured()  # each message is secured within 0.1 s
        feed(app, "t/1", [b"b"], first_mid=mid + 100)
        assert (await app.mqtt_health()).status is Status.CONNECTED
        await asyncio.sleep(0.1)
        slow.pending.pop(0).secured()

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

from mqferry._errors import DeliveryError
from mqferry._plugins import load_plugins
from mqferry._templates import Template
from mqferry.testing import RecordingAction, build_app


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


_started = []


async def build(plugins, rules, tmp_path, **extra):
    """A started app on an MQTT twin (its Kafka source disabled: only its events matter)."""
    data = {
        "connectors": {"kafka_consumer": {"c": {"bootstrap_hosts": "127.0.0.1:1",
                                                "enable": False}}},
        "sources": {"kafka_consumer": {"src": {"connector": "c", "enable": False,
                                               "parameters": {"topic": "k"}}}},
        "rules": rules,
        **extra,
    }
    h = build_app(data, plugins=plugins, data_dir=tmp_path)
    await h.start()
    _started.append(h)
    return h.app


@pytest.fixture(autouse=True)
async def _stop_apps():
    yield
    while _started:
        await _started.pop().stop()


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

    def select(self, event):  # the runtime's path for SELECT rules
        raise self._exc

    def __getattr__(self, name):
        return getattr(self._compiled, name)


def acked_mids(app):
    return app.mqtt.acked


def feed(app, topic, payloads):
    for payload in payloads:
        app.mqtt.deliver(topic, payload)


async def test_a_poison_message_the_action_cannot_render_fails_alone(plugins, tmp_path):
    app = await build(
        plugins, {"r": {"sql": "SELECT 'deep' as kt, payload.d as d FROM \"deep/#\""}}, tmp_path)
    action = TemplateAction()
    app.rules["r"].actions = [action]
    acked = acked_mids(app)
    feed(app, "deep/1", [f'{{"d": {deep(300)}}}'.encode()])
    feed(app, "deep/1", [f'{{"d": {i}}}'.encode() for i in range(100)])
    assert acked == list(range(1, 102))
    assert [o["d"] for o in action.outputs] == list(range(100))
    rule = app.rules["r"].metrics.snapshot()
    assert (rule["actions.total"], rule["actions.success"], rule["actions.failed"]) == (
        101, 100, 1)
    assert action.metrics.get("failed.exception") == 1


async def test_any_exception_from_submit_fails_that_output_only(plugins, tmp_path, caplog):
    app = await build(plugins, {"r": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path)
    broken, good = RaisingAction(exc=KeyError("k")), RecordingAction()
    app.rules["r"].actions = [broken, good]
    acked = acked_mids(app)
    with caplog.at_level(logging.WARNING, logger="mqferry._runtime"):
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
    app = await build(plugins, {"r": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path)
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
    app = await build(plugins, {"bad": {"sql": 'SELECT payload FROM "t/#"'},
                          "good": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path)
    bad = app.rules["bad"]
    bad.compiled = ExplodingRule(bad.compiled, exc)
    out = RecordingAction()
    bad.actions, app.rules["good"].actions = [RecordingAction("unused:x")], [out]
    acked = acked_mids(app)
    with caplog.at_level(logging.WARNING, logger="mqferry._runtime"):
        feed(app, "t/1", [b"a", b"b"])
    assert acked == [1, 2]
    assert [o["payload"] for o in out.outputs] == ["a", "b"]
    m = bad.metrics.snapshot()
    assert (m["matched"], m["failed"], m["failed.exception"]) == (2, 2, 2)
    [line] = [r.getMessage() for r in caplog.records if "rule bad" in r.getMessage()]
    assert type(exc).__name__ in line and "'t/1'" in line


async def test_a_message_that_cannot_be_turned_into_an_event_is_still_acknowledged(
        plugins, tmp_path):
    app = await build(plugins, {"r": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path)
    acked = acked_mids(app)
    mid = app.mqtt.deliver("t/1", b"x", properties=SimpleNamespace(UserProperty=42))  # not pairs
    assert acked == [mid]


async def test_dispatch_completes_failed_when_an_action_raises(plugins, tmp_path):
    app = await build(plugins, {"k": {"sql": 'SELECT value FROM "$sources/kafka_consumer:src"'}},
                tmp_path)
    app.rules["k"].actions = [RaisingAction()]
    # the source learns that its event failed, and why (it fails the record alone)
    with pytest.raises(DeliveryError) as failed:
        await asyncio.wait_for(app.dispatch({"event": "$bridges/kafka_consumer:src",
                                             "value": "v"}), 1)
    assert failed.value.reason == "failed.action"
    assert failed.value.detail == (
        "rule k: action raising:x failed an output (failed.exception: TypeError: boom)")
    assert app.rules["k"].metrics.get("actions.failed") == 1


async def test_dispatch_completes_failed_when_a_rule_fails_on_the_event(plugins, tmp_path):
    app = await build(plugins, {
        "k": {"sql": 'SELECT value FROM "$sources/kafka_consumer:src"'},
        "ok": {"sql": 'SELECT value FROM "$sources/kafka_consumer:src"'}}, tmp_path)
    k = app.rules["k"]
    k.compiled = ExplodingRule(k.compiled, TypeError("boom"))
    out = RecordingAction()
    app.rules["ok"].actions = [out]
    # the source learns that its event failed, and why (it fails the record alone)
    with pytest.raises(DeliveryError) as failed:
        await asyncio.wait_for(app.dispatch({"event": "$bridges/kafka_consumer:src",
                                             "value": "v"}), 1)
    assert failed.value.reason == "failed.rule"
    assert failed.value.detail == "rule k failed on the event (failed.exception: TypeError: boom)"
    assert out.outputs == [{"value": "v"}]  # the other rule ran
    assert k.metrics.get("failed.exception") == 1


async def test_dispatch_fails_when_a_rule_fails_not_when_it_selects_nothing(plugins, tmp_path):
    where = "SELECT value FROM \"$sources/kafka_consumer:src\" WHERE value = 'x'"
    foreach = 'FOREACH json_decode(value) as x FROM "$sources/kafka_consumer:src"'
    app = await build(plugins, {"where": {"sql": where}, "foreach": {"sql": foreach}}, tmp_path)
    await asyncio.wait_for(app.dispatch({"event": "$bridges/kafka_consumer:src",
                                         "value": "[]"}), 1)
    assert app.rules["where"].metrics.get("filtered") == 1
    assert app.rules["foreach"].metrics.get("failed.no_result") == 1
    # and a value a rule cannot evaluate fails it
    with pytest.raises(DeliveryError, match="rule foreach failed on the event"):
        await asyncio.wait_for(app.dispatch({"event": "$bridges/kafka_consumer:src",
                                             "value": "["}), 1)


async def test_at_most_once_acks_even_when_submit_raises(plugins, tmp_path):
    app = await build(plugins, {"r": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path,
                mqtt={"delivery": "at_most_once"})
    app.rules["r"].actions = [RaisingAction()]
    acked = acked_mids(app)
    feed(app, "t/1", [b"a", b"b"])
    assert acked == [1, 2]


async def test_a_stalled_ack_makes_the_mqtt_health_connecting_with_the_holder(
        plugins, tmp_path):
    from mqferry._types import Status

    app = await build(plugins, {"r": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path)
    slow = RecordingAction("slow:x", hold=True)
    slow.metrics.gauge("inflight", lambda: len(slow.pending))
    app.actions["slow:x"] = slow
    app.rules["r"].actions = [slow]
    assert (await app.mqtt.health()).status is Status.CONNECTED  # the session itself is up
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
    from mqferry._types import Status

    app = await build(plugins, {"r": {"sql": 'SELECT payload FROM "t/#"'}}, tmp_path)
    slow = RecordingAction("slow:x", hold=True)
    app.rules["r"].actions = [slow]
    assert (await app.mqtt.health()).status is Status.CONNECTED
    app.ack_stall_after = 0.2
    for _ in range(5):
        feed(app, "t/1", [b"a"])
        slow.pending.pop(0).secured()  # each message is secured within 0.1 s
        feed(app, "t/1", [b"b"])
        assert (await app.mqtt_health()).status is Status.CONNECTED
        await asyncio.sleep(0.1)
        slow.pending.pop(0).secured()

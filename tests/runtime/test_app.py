"""The runtime's data path with in-memory twins: routing, metrics, held acks, dispatch."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from mqferry.config import validate_config
from mqferry.plugins import load_plugins
from mqferry.runtime import App
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
    return App(cfg, data_dir=tmp_path)


def paho_message(topic, payload, mid=1, qos=1):
    return SimpleNamespace(topic=topic, payload=payload, qos=qos, mid=mid, retain=False,
                           dup=False, properties=None)


def wire(app, rule_id, action):
    app.rules[rule_id].actions = [action]


async def test_routes_by_topic_and_counts_rule_metrics(plugins, tmp_path):
    app = build(plugins, {
        "hot": {"sql": 'SELECT payload.t AS t FROM "s/+/temp" WHERE payload.t > 20'},
        "all": {"sql": 'SELECT topic FROM "s/#"'},
        "other": {"sql": 'SELECT * FROM "x/#"'},
    }, tmp_path)
    hot, everything = RecordingAction(), RecordingAction()
    wire(app, "hot", hot)
    wire(app, "all", everything)
    app._accepting = True
    app._on_message(paho_message("s/1/temp", b'{"t": 25}'), None)
    app._on_message(paho_message("s/1/temp", b'{"t": 5}'), None)
    app._on_message(paho_message("s/1/temp", b"not json"), None)
    assert hot.outputs == [{"t": 25}]
    assert [o["topic"] for o in everything.outputs] == ["s/1/temp"] * 3
    m = app.rules["hot"].metrics.snapshot()
    assert (m["matched"], m["passed"], m["filtered"], m["failed.exception"]) == (3, 1, 1, 1)
    assert m["actions.success"] == 1
    assert app.rules["other"].metrics.snapshot()["matched"] == 0
    assert app.topic_filters == {"s/+/temp", "s/#", "x/#"}


async def test_ack_waits_for_every_action_of_every_rule(plugins, tmp_path):
    app = build(plugins, {"a": {"sql": 'SELECT * FROM "t/#"'},
                          "b": {"sql": 'SELECT * FROM "t/1"'}}, tmp_path)
    slow, fast = RecordingAction(hold=True), RecordingAction()
    wire(app, "a", slow)
    wire(app, "b", fast)
    acked = []
    app.mqtt.acks._send_acks = lambda acks: acked.extend(mid for mid, _ in acks)
    app._accepting = True
    for mid in (1, 2):
        ticket = app.mqtt.acks.open(mid, 1)
        app._on_message(paho_message("t/1", b"x", mid=mid), ticket)
    assert acked == []
    slow.release_all()
    assert acked == [1, 2]


async def test_messages_while_stopping_are_left_unacknowledged(plugins, tmp_path):
    app = build(plugins, {"a": {"sql": 'SELECT * FROM "t/#"'}}, tmp_path)
    action = RecordingAction()
    wire(app, "a", action)
    acked = []
    app.mqtt.acks._send_acks = lambda acks: acked.extend(mid for mid, _ in acks)
    app._accepting = False
    app._on_message(paho_message("t/1", b"x", mid=5), app.mqtt.acks.open(5, 1))
    assert action.outputs == [] and acked == []


async def test_dispatch_runs_event_rules_and_waits_for_their_actions(plugins, tmp_path):
    app = build(plugins, {"k": {"sql": 'SELECT value FROM "$sources/kafka_consumer:src"'}},
                tmp_path)
    action = RecordingAction(hold=True)
    wire(app, "k", action)
    task = asyncio.create_task(app.dispatch({"event": "$bridges/kafka_consumer:src",
                                             "value": "v1"}))
    await asyncio.sleep(0.01)
    assert action.outputs == [{"value": "v1"}]
    assert not task.done()
    action.release_all()
    await asyncio.wait_for(task, 1)


async def test_dispatch_of_an_event_no_rule_selects_returns_at_once(plugins, tmp_path):
    app = build(plugins, {}, tmp_path)
    await asyncio.wait_for(app.dispatch({"event": "$bridges/kafka_consumer:src"}), 1)


async def test_foreach_without_items_counts_no_result(plugins, tmp_path):
    app = build(plugins, {"f": {"sql": 'FOREACH payload.xs FROM "t/#"'}}, tmp_path)
    action = RecordingAction()
    wire(app, "f", action)
    app._accepting = True
    app._on_message(paho_message("t/1", b'{"xs": []}'), None)
    app._on_message(paho_message("t/1", b'{"xs": [1, 2]}'), None)
    m = app.rules["f"].metrics.snapshot()
    assert (m["failed.no_result"], m["passed"], m["actions.total"]) == (1, 1, 2)
    assert len(action.outputs) == 2


class WaitingAction(RecordingAction):
    """A held action that asks at-most-once acks to wait for it (as ``query_mode: sync``)."""

    def __init__(self, ack_wait):
        super().__init__("recording:sync", hold=True)
        self.ack_wait = ack_wait


def at_most_once(plugins, tmp_path):
    return build(plugins, {"a": {"sql": 'SELECT * FROM "t/#"'}}, tmp_path,
                 mqtt={"delivery": "at_most_once"})


def feed(app, mids):
    acked = []
    app.mqtt.acks._send_acks = lambda acks: acked.extend(mid for mid, _ in acks)
    app._accepting = True
    for mid in mids:
        app._on_message(paho_message("t/1", b"x", mid=mid), app.mqtt.acks.open(mid, 1))
    return acked


async def test_at_most_once_acks_at_once_when_no_action_waits(plugins, tmp_path):
    app = at_most_once(plugins, tmp_path)
    held = RecordingAction(hold=True)
    wire(app, "a", held)
    assert feed(app, [1, 2]) == [1, 2]
    held.release_all()  # the outcome still counts
    assert app.rules["a"].metrics.snapshot()["actions.success"] == 2


async def test_at_most_once_ack_waits_for_a_sync_action_until_its_outcome(plugins, tmp_path):
    app = at_most_once(plugins, tmp_path)
    sync = WaitingAction(ack_wait=30.0)
    wire(app, "a", sync)
    acked = feed(app, [1, 2])
    assert acked == []
    sync.release_all()
    assert acked == [1, 2]
    app._waits.expire(time.monotonic() + 60)  # settled waits are not released twice
    assert acked == [1, 2]


async def test_at_most_once_ack_waits_no_longer_than_ack_wait(plugins, tmp_path):
    app = at_most_once(plugins, tmp_path)
    sync = WaitingAction(ack_wait=0.2)
    wire(app, "a", sync)
    app._waits.start()
    try:
        acked = feed(app, [1, 2])
        assert acked == []
        await asyncio.sleep(0.6)
        assert acked == [1, 2]
        sync.release_all()  # a late outcome is still counted, and acks nothing again
        assert acked == [1, 2]
        assert app.rules["a"].metrics.snapshot()["actions.success"] == 2
    finally:
        await app._waits.stop()


async def test_at_least_once_ignores_ack_wait(plugins, tmp_path):
    app = build(plugins, {"a": {"sql": 'SELECT * FROM "t/#"'}}, tmp_path)
    sync = WaitingAction(ack_wait=0.01)
    wire(app, "a", sync)
    acked = feed(app, [1])
    await asyncio.sleep(0.1)
    assert acked == []
    sync.release_all()
    assert acked == [1]

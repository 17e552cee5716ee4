"""The runtime's data path on twins (mqferry.testing): routing, metrics, held acks, dispatch."""

from __future__ import annotations

import asyncio

import pytest

from mqferry.testing import RecordingAction, wait_until

# A source for the rules of its events to select; disabled: nothing here talks to Kafka.
SOURCES = {
    "connectors": {"kafka_consumer": {"c": {"bootstrap_hosts": "127.0.0.1:1", "enable": False}}},
    "sources": {"kafka_consumer": {"src": {"connector": "c", "enable": False,
                                           "parameters": {"topic": "k"}}}},
}


@pytest.fixture
def build(mqferry_app):
    def make(rules, **extra):
        return mqferry_app({**SOURCES, "rules": rules, **extra})
    return make


async def test_routes_by_topic_and_counts_rule_metrics(build):
    h = build({
        "hot": {"sql": 'SELECT payload.t AS t FROM "s/+/temp" WHERE payload.t > 20'},
        "all": {"sql": 'SELECT topic FROM "s/#"'},
        "other": {"sql": 'SELECT * FROM "x/#"'},
    })
    hot, everything = RecordingAction(), RecordingAction()
    h.wire("hot", hot)
    h.wire("all", everything)
    async with h:
        h.mqtt.deliver("s/1/temp", b'{"t": 25}', qos=0)
        h.mqtt.deliver("s/1/temp", b'{"t": 5}', qos=0)
        h.mqtt.deliver("s/1/temp", b"not json", qos=0)
    assert hot.outputs == [{"t": 25}]
    assert [o["topic"] for o in everything.outputs] == ["s/1/temp"] * 3
    m = h.app.rules["hot"].metrics.snapshot()
    assert (m["matched"], m["passed"], m["filtered"], m["failed.exception"]) == (3, 1, 1, 1)
    assert m["actions.success"] == 1
    assert h.app.rules["other"].metrics.snapshot()["matched"] == 0
    assert h.mqtt.subscriptions == h.app.topic_filters == {"s/+/temp", "s/#", "x/#"}


async def test_ack_waits_for_every_action_of_every_rule(build):
    h = build({"a": {"sql": 'SELECT * FROM "t/#"'}, "b": {"sql": 'SELECT * FROM "t/1"'}})
    slow, fast = RecordingAction(hold=True), RecordingAction()
    h.wire("a", slow)
    h.wire("b", fast)
    async with h:
        assert [h.mqtt.deliver("t/1", b"x"), h.mqtt.deliver("t/1", b"x")] == [1, 2]
        assert h.mqtt.acked == []
        slow.release_all()
        assert h.mqtt.acked == [1, 2]


async def test_messages_after_stop_are_left_unacknowledged(build):
    h = build({"a": {"sql": 'SELECT * FROM "t/#"'}})
    action = RecordingAction()
    h.wire("a", action)
    async with h:
        pass
    h.mqtt.subscriptions = {"t/#"}  # a message the session delivered as it closed
    h.mqtt.deliver("t/1", b"x")
    assert action.outputs == [] and h.mqtt.acked == []


async def test_dispatch_runs_event_rules_and_waits_for_their_actions(build):
    h = build({"k": {"sql": 'SELECT value FROM "$sources/kafka_consumer:src"'}})
    action = RecordingAction(hold=True)
    h.wire("k", action)
    task = asyncio.create_task(h.app.dispatch({"event": "$bridges/kafka_consumer:src",
                                               "value": "v1"}))
    await asyncio.sleep(0.01)
    assert action.outputs == [{"value": "v1"}]
    assert not task.done()
    action.release_all()
    await asyncio.wait_for(task, 1)


async def test_dispatch_of_an_event_no_rule_selects_returns_at_once(build):
    h = build({})
    await asyncio.wait_for(h.app.dispatch({"event": "$bridges/kafka_consumer:src"}), 1)


async def test_foreach_without_items_counts_no_result(build):
    h = build({"f": {"sql": 'FOREACH payload.xs FROM "t/#"'}})
    action = RecordingAction()
    h.wire("f", action)
    async with h:
        h.mqtt.deliver("t/1", b'{"xs": []}', qos=0)
        h.mqtt.deliver("t/1", b'{"xs": [1, 2]}', qos=0)
    m = h.app.rules["f"].metrics.snapshot()
    assert (m["failed.no_result"], m["passed"], m["actions.total"]) == (1, 1, 2)
    assert len(action.outputs) == 2


class WaitingAction(RecordingAction):
    """A held action that asks at-most-once acks to wait for it (as ``query_mode: sync``)."""

    def __init__(self, ack_wait):
        super().__init__("recording:sync", hold=True)
        self.ack_wait = ack_wait


def feed(h, count):
    return [h.mqtt.deliver("t/1", b"x") for _ in range(count)]


async def test_at_most_once_acks_at_once_when_no_action_waits(build):
    h = build({"a": {"sql": 'SELECT * FROM "t/#"'}}, mqtt={"delivery": "at_most_once"})
    held = RecordingAction(hold=True)
    h.wire("a", held)
    async with h:
        assert feed(h, 2) == h.mqtt.acked == [1, 2]
        held.release_all()  # the outcome still counts
    assert h.app.rules["a"].metrics.snapshot()["actions.success"] == 2


async def test_at_most_once_ack_waits_for_a_sync_action_until_its_outcome(build):
    h = build({"a": {"sql": 'SELECT * FROM "t/#"'}}, mqtt={"delivery": "at_most_once"})
    sync = WaitingAction(ack_wait=0.3)
    h.wire("a", sync)
    async with h:
        feed(h, 2)
        assert h.mqtt.acked == []
        sync.release_all()
        assert h.mqtt.acked == [1, 2]
        await asyncio.sleep(0.6)  # past ack_wait: settled waits are not released twice
        assert h.mqtt.acked == [1, 2]


async def test_at_most_once_ack_waits_no_longer_than_ack_wait(build):
    h = build({"a": {"sql": 'SELECT * FROM "t/#"'}}, mqtt={"delivery": "at_most_once"})
    sync = WaitingAction(ack_wait=0.2)
    h.wire("a", sync)
    async with h:
        feed(h, 2)
        assert h.mqtt.acked == []
        await wait_until(lambda: h.mqtt.acked == [1, 2], timeout=1.0)
        sync.release_all()  # a late outcome is still counted, and acks nothing again
        assert h.mqtt.acked == [1, 2]
        assert h.app.rules["a"].metrics.snapshot()["actions.success"] == 2


async def test_at_least_once_ignores_ack_wait(build):
    h = build({"a": {"sql": 'SELECT * FROM "t/#"'}})
    sync = WaitingAction(ack_wait=0.01)
    h.wire("a", sync)
    async with h:
        feed(h, 1)
        await asyncio.sleep(0.1)
        assert h.mqtt.acked == []
        sync.release_all()
        assert h.mqtt.acked == [1]

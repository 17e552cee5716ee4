"""A record whose rule output an action fails for good, or that a rule fails on, fails alone at
its source; a record a rule does not select (WHERE false, FOREACH without an element) does not.

The app's rules and a real ``republish`` action, on an MQTT twin; the source is fed records
directly (no consumer). ``tests/integration/test_poison_records.py`` proves the same against the
real brokers, dead-letter topic included.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka import TopicPartition

from mqferry import MqttUnavailable
from mqferry._plugins import load_plugins
from mqferry.testing import build_app, wait_until
from tests.plugins.kafka_consumer.conftest import build_source

TP = TopicPartition("in", 0)

CONFIG = {
    # the configured source is never started: the test's own feeds the rules, under its name
    "connectors": {"kafka_consumer": {"c": {"bootstrap_hosts": "127.0.0.1:1", "enable": False}}},
    "sources": {"kafka_consumer": {"s": {"connector": "c", "enable": False,
                                         "parameters": {"topic": "in"}}}},
    "actions": {"republish": {"out": {"parameters": {"topic": "out/${v}", "payload": "${v}",
                                                     "qos": 1}}}},
    "rules": {"r": {"sql": 'SELECT value as v FROM "$bridges/kafka_consumer:s"',
                    "actions": ["republish:out"]}},
}


class DeadLetterTwin:
    """The source's dead-letter topic: keeps ``(offset, reason)`` of each record sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str]] = []

    def send(self, record, reason):
        self.sent.append((record.offset, reason))
        return asyncio.get_running_loop().create_task(asyncio.sleep(0))


@pytest.fixture
async def bridge_with(tmp_path):
    """``await bridge_with(rules)``: a started app with ``rules`` added to CONFIG's, and a
    ``kafka_consumer:s`` source feeding them, with dead letters."""
    started = []

    async def make(rules):
        h = build_app({**CONFIG, "rules": {**CONFIG["rules"], **rules}}, plugins=load_plugins(),
                      data_dir=tmp_path)
        await h.start()
        started.append(h)
        src = build_source(h.mqtt, topic="in", topic_mapping=[])
        src.context.dispatch_nowait = h.app.dispatch_nowait
        src.handler.dead_letter = dead = DeadLetterTwin()
        return h, src, dead

    yield make
    for h in started:
        await h.stop()


@pytest.fixture
async def bridge(bridge_with):
    """A started app, and a ``kafka_consumer:s`` source feeding its rules, with dead letters."""
    return await bridge_with({})


def outcome(src, reason="failed.action"):
    snap = src.metrics.snapshot()
    return {k: snap.get(k, 0) for k in ("received", "success", "failed", reason)}


async def test_an_output_republish_cannot_publish_fails_the_record_alone(bridge, record,
                                                                          caplog):
    h, src, dead = bridge
    with caplog.at_level(logging.WARNING, logger="mqferry_kafka_consumer.handler"):
        # "+" renders a topic no broker takes: republish fails the output (failed.render)
        src.handler.handle_batches({TP: [record(0, b"a"), record(1, b"+"), record(2, b"c")]})
        await wait_until(lambda: src.tracker.committable() == {TP: 3})
    assert [p.topic for p in h.mqtt.published] == ["out/a", "out/c"]
    assert outcome(src) == {"received": 3, "success": 2, "failed": 1, "failed.action": 1}
    why = "rule r: action republish:out failed an output (failed.render)"
    assert dead.sent == [(1, why)]
    [line] = [r.getMessage() for r in caplog.records if "in/0@1" in r.getMessage()]
    assert line == f"source kafka_consumer:s: record in/0@1: {why}"


async def test_a_publish_the_client_refuses_fails_the_record_alone(bridge, record):
    h, src, dead = bridge
    h.mqtt.fail_next.append(ValueError("a property the broker would refuse"))
    src.handler.handle_batches({TP: [record(0, b"a"), record(1, b"b")]})
    await wait_until(lambda: src.tracker.committable() == {TP: 2})
    assert [p.topic for p in h.mqtt.published] == ["out/b"]
    assert outcome(src) == {"received": 2, "success": 1, "failed": 1, "failed.action": 1}
    assert dead.sent == [(0, "rule r: action republish:out failed an output (failed.invalid)")]


async def test_a_publish_interrupted_by_a_lost_session_is_retried_not_failed(bridge, record):
    h, src, dead = bridge
    h.mqtt.fail_next.append(MqttUnavailable("connection lost"))
    src.handler.handle_batches({TP: [record(0, b"a")]})
    assert src.tracker.committable() == {}
    await wait_until(lambda: src.tracker.committable() == {TP: 1})  # republished after 0.5 s
    assert [p.topic for p in h.mqtt.published] == ["out/a"]
    assert outcome(src) == {"received": 1, "success": 1, "failed": 0, "failed.action": 0}
    assert dead.sent == []


SOURCE = '"$bridges/kafka_consumer:s"'


@pytest.mark.parametrize(("sql", "unselected", "selected"), [
    (f"SELECT json_decode(value) as j FROM {SOURCE} WHERE j = 1", b"2", b"1"),
    # FOREACH without an element counts failed.no_result on the rule (as EMQX): no failure
    (f"FOREACH json_decode(value) as x FROM {SOURCE}", b"[]", b"[1]"),
    (f"FOREACH json_decode(value) as x INCASE x > 5 FROM {SOURCE}", b"[1]", b"[9]"),
    # a pattern that is not a literal: evaluated in the worker thread
    (f"SELECT regex_match('x', value) as m FROM {SOURCE} WHERE m", b"y", b"x"),
], ids=["where", "foreach", "incase", "worker"])
async def test_a_record_a_rule_fails_on_fails_alone_one_it_does_not_select_succeeds(
        bridge_with, record, caplog, sql, unselected, selected):
    h, src, dead = await bridge_with({"dec": {"sql": sql}})
    with caplog.at_level(logging.WARNING, logger="mqferry_kafka_consumer.handler"):
        # "[" is neither JSON nor a regular expression: rule dec fails on it; r still runs
        src.handler.handle_batches({TP: [record(0, unselected), record(1, b"["),
                                         record(2, selected)]})
        await wait_until(lambda: src.tracker.committable() == {TP: 3})
    assert len(h.mqtt.published) == 3  # rule r republished each
    assert outcome(src, "failed.rule") == {"received": 3, "success": 2, "failed": 1,
                                           "failed.rule": 1}
    [(offset, why)] = dead.sent
    assert offset == 1
    assert why.startswith("rule dec failed on the event (failed.exception: "), why
    assert "'['" in why, why  # the error names the value
    [line] = [r.getMessage() for r in caplog.records if "in/0@1" in r.getMessage()]
    assert line == f"source kafka_consumer:s: record in/0@1: {why}"
    # the rule counts its failure as it does for a message
    m = h.app.rules["dec"].metrics.snapshot()
    assert (m["matched"], m["passed"], m["failed.exception"]) == (3, 1, 1)

"""The MQTT dead-letter destination (``mqtt.dead_letter``), with in-memory twins."""

from __future__ import annotations

import pytest

from mqferry._config import validate_config
from mqferry._errors import ConfigError, DeliveryError
from mqferry._plugins import load_plugins
from mqferry._runtime.app import App
from mqferry._types import LOOP_MARKER
from mqferry.testing import RecordingAction, build_app, wait_until

DLQ = "republish:dlq"


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


def config(rules, dlq=None, **mqtt):
    # the source is disabled: it is there for the rules of its events to select
    return {
        "mqtt": {"dead_letter": {"action": DLQ}, **mqtt},
        "connectors": {"kafka_consumer": {"c": {"bootstrap_hosts": "127.0.0.1:1",
                                                "enable": False}}},
        "sources": {"kafka_consumer": {"src": {"connector": "c", "enable": False,
                                               "parameters": {"topic": "k"}}}},
        "actions": {"republish": {"dlq": {"parameters": dlq or {"topic": "dlq/${topic}"}}}},
        "rules": rules,
    }


@pytest.fixture
async def build(plugins, tmp_path):
    """Started apps on MQTT twins: ``build(rules, hold=..., dlq=..., **mqtt)``."""
    started = []

    async def make(rules, *, hold=False, twin=True, dlq=None, **mqtt):
        h = build_app(config(rules, dlq, **mqtt), plugins=plugins, data_dir=tmp_path)
        dead = RecordingAction(DLQ, hold=hold)
        if twin:
            h.app.actions[DLQ] = dead  # the twin stands in for the configured action
        await h.start()
        started.append(h)
        return h, dead

    yield make
    for h in started:
        await h.stop()


class FailingAction(RecordingAction):
    def __init__(self, reason):
        super().__init__("failing:x")
        self.reason = reason

    def submit(self, output, delivery):
        delivery.failed(self.reason)


def test_the_dead_letter_action_must_exist(plugins):
    data = config({})
    data["mqtt"]["dead_letter"] = {"action": "kafka_producer:nope"}
    with pytest.raises(ConfigError) as info:
        validate_config(data, plugins.registries(), plugins.function_table())
    assert info.value.problems == [("mqtt.dead_letter.action",
                                    "unknown action 'kafka_producer:nope'")]
    data["mqtt"]["dead_letter"] = {"action": "no-type"}
    with pytest.raises(ConfigError, match=r"mqtt\.dead_letter\.action: expected an action id"):
        validate_config(data, plugins.registries(), plugins.function_table())


async def test_a_failed_evaluation_is_dead_lettered_with_its_mqtt_context(build):
    h, dead = await build({"r": {"sql": 'SELECT payload.x as x FROM "t/#"'}})
    payload = b"\xff not json \x00"
    mid = h.mqtt.deliver("t/1", payload, retain=True, content_type="text/plain",
                         user_properties=[("clientid", "dev-1"), ("username", "alice"),
                                          ("site", "n")])
    assert h.mqtt.acked == [mid]
    [out] = dead.outputs
    assert out["payload"] == payload
    assert (out["topic"], out["clientid"], out["username"], out["qos"], out["retain"]) == (
        "t/1", "dev-1", "alice", 1, True)
    assert out["pub_props"]["Content-Type"] == "text/plain"
    assert out["user_properties"] == {"clientid": "dev-1", "username": "alice", "site": "n"}
    assert (out["reason"], out["rule_id"], out["node"]) == (
        "failed.exception", "r", "mqferry@localhost")
    assert "action_id" not in out
    assert "decode_json_failed" in out["error"]
    assert isinstance(out["timestamp"], int)
    headers = out["headers"]
    assert all(isinstance(v, str) for v in headers.values())
    assert {k: headers[k] for k in ("mqtt-topic", "mqtt-clientid", "mqtt-username",
                                    "mqtt-qos", "mqtt-retain", "mqtt-content-type", "site",
                                    "mqferry-reason", "mqferry-rule")} == {
        "mqtt-topic": "t/1", "mqtt-clientid": "dev-1", "mqtt-username": "alice",
        "mqtt-qos": "1", "mqtt-retain": "true", "mqtt-content-type": "text/plain",
        "site": "n", "mqferry-reason": "failed.exception", "mqferry-rule": "r"}
    m = h.app.rules["r"].metrics.snapshot()
    assert (m["failed.exception"], m["dead_letter.success"]) == (1, 1)


async def test_the_ack_waits_until_the_dead_letter_is_secured(build):
    h, dead = await build({"r": {"sql": 'SELECT payload.x as x FROM "t/#"'}}, hold=True)
    h.mqtt.deliver("t/1", b"bad")
    h.mqtt.deliver("t/1", b'{"x": 1}')
    assert h.mqtt.acked == []  # the dead letter of 1 is not secured yet, and 2 is behind it
    dead.release_all()
    assert h.mqtt.acked == [1, 2]


async def test_a_dead_letter_that_fails_is_counted_and_released(build, caplog):
    h, _ = await build({"r": {"sql": 'SELECT payload.x as x FROM "t/#"'}})
    h.app.actions[DLQ] = FailingAction("failed.publish")
    h.mqtt.deliver("t/1", b"bad")
    assert h.mqtt.acked == [1]
    assert h.app.rules["r"].metrics.get("dead_letter.failed") == 1
    assert "could not be dead-lettered" in caplog.text


async def test_a_dead_letter_action_that_raises_is_counted_and_released(build):
    h, _ = await build({"r": {"sql": 'SELECT payload.x as x FROM "t/#"'}})

    class Raising(RecordingAction):
        def submit(self, output, delivery):
            raise RuntimeError("broken")

    h.app.actions[DLQ] = Raising(DLQ)
    h.mqtt.deliver("t/1", b"bad")
    assert h.mqtt.acked == [1]
    assert h.app.rules["r"].metrics.get("dead_letter.failed") == 1
    assert h.app.actions[DLQ].metrics.get("failed.exception") == 1


@pytest.mark.parametrize(("reason", "dead_lettered"), [
    ("failed.too_large", True), ("failed.render", True), ("failed.exception", True),
    ("dropped.queue_full", False), ("dropped.expired", False)])
async def test_failed_outputs_are_dead_lettered_dropped_ones_are_not(build, reason, dead_lettered):
    h, dead = await build({"r": {"sql": 'SELECT payload FROM "t/#"'}})
    h.app.rules["r"].actions = [FailingAction(reason)]
    h.mqtt.deliver("t/1", b"p")
    assert h.mqtt.acked == [1]
    if dead_lettered:
        [out] = dead.outputs
        assert (out["reason"], out["action_id"], out["payload"]) == (reason, "failing:x", b"p")
        assert out["headers"]["mqferry-action"] == "failing:x"
    else:
        assert dead.outputs == []


async def test_an_output_whose_submit_raised_is_dead_lettered_with_the_exception(build):
    h, dead = await build({"r": {"sql": 'SELECT payload FROM "t/#"'}})

    class Raising(RecordingAction):
        def submit(self, output, delivery):
            raise TypeError("Recursion limit reached")

    h.app.rules["r"].actions = [Raising("kafka_producer:sink")]
    h.mqtt.deliver("t/1", b"p")
    assert h.mqtt.acked == [1]
    [out] = dead.outputs
    assert (out["reason"], out["action_id"]) == ("failed.exception", "kafka_producer:sink")
    assert "TypeError: Recursion limit reached" in out["error"]


async def test_events_of_kafka_sources_are_not_mqtt_dead_letters(build):
    h, dead = await build(
        {"k": {"sql": 'SELECT payload.x as x FROM "$sources/kafka_consumer:src"'}})
    # the source's dispatch fails instead: the source dead-letters its record itself
    with pytest.raises(DeliveryError) as failed:
        await h.app.dispatch({"event": "$bridges/kafka_consumer:src", "payload": "not json"})
    assert failed.value.reason == "failed.rule"
    assert h.app.rules["k"].metrics.get("failed.exception") == 1
    assert dead.outputs == []


async def test_at_most_once_does_not_wait_for_the_dead_letter(build):
    h, dead = await build({"r": {"sql": 'SELECT payload.x as x FROM "t/#"'}}, hold=True,
                             delivery="at_most_once")
    h.mqtt.deliver("t/1", b"bad")
    assert h.mqtt.acked == [1]
    assert len(dead.outputs) == 1
    dead.release_all()
    assert h.app.rules["r"].metrics.get("dead_letter.success") == 1


async def test_a_republished_dead_letter_is_not_republished_again(build):
    h, _ = await build({"r": {"sql": 'SELECT payload.x as x FROM "#"'}}, twin=False)
    h.mqtt.deliver("dlq/t/1", b"bad", user_properties=[(LOOP_MARKER, DLQ)])
    await h.mqtt.settle()
    assert h.mqtt.acked == [1]
    assert h.mqtt.published == []
    assert h.app.rules["r"].metrics.get("dead_letter.failed") == 1


async def test_republish_renders_a_dead_letter_with_its_defaults(build):
    h, _ = await build({"r": {"sql": 'SELECT payload.x as x FROM "t/#"'}}, twin=False,
                       dlq={"topic": "dlq/${topic}", "user_properties": "${headers}"})
    h.mqtt.deliver("t/1", b"\x00raw", user_properties=[("clientid", "dev-9")])
    await wait_until(lambda: h.mqtt.acked == [1])
    [pub] = h.mqtt.published
    assert (pub.topic, pub.payload, pub.qos, pub.retain) == ("dlq/t/1", b"\x00raw", 1, False)
    user = dict(pub.properties["User-Property"])
    assert (user["mqtt-topic"], user["mqtt-clientid"], user["mqferry-rule"]) == (
        "t/1", "dev-9", "r")


def test_the_kafka_example_renders_a_dead_letter_as_documented(plugins, tmp_path):
    from mqferry._config import load_config
    from mqferry._rules import Event
    from mqferry._runtime.deadletter import dead_letter_output

    cfg = load_config("examples/dead-letter-kafka.yaml", plugins.registries(),
                      plugins.function_table())
    app = App(cfg, data_dir=tmp_path)
    event = Event(topic="telemetry/7", payload=b"\xffraw", qos=1, event="message.publish",
                  flags={"retain": False}, clientid="dev-7",
                  pub_props={"User-Property": {"clientid": "dev-7", "site": "n"}})
    out = dead_letter_output(event, reason="failed.too_large", error="too large",
                             rule_id="telemetry", action_id="kafka_producer:my-kafka-sink",
                             node="n1")
    record = app.actions[cfg.raw.mqtt.dead_letter.action].preview(out)
    assert (record["topic"], record["key"], record["value"]) == (
        "mqtt-dead-letters", "dev-7", "base64:/3Jhdw==")  # the raw bytes, as preview shows them
    headers = {h["key"]: h["value"] for h in record["headers"]}
    assert headers["mqtt-topic"] == "telemetry/7" and headers["site"] == "n"
    assert headers["mqferry-reason"] == "failed.too_large"
    assert headers["mqferry-action"] == "kafka_producer:my-kafka-sink"


def test_the_mqtt_example_is_valid(plugins):
    from mqferry._config import load_config

    cfg = load_config("examples/dead-letter-mqtt.yaml", plugins.registries(),
                      plugins.function_table())
    assert cfg.raw.mqtt.dead_letter is not None
    assert cfg.raw.mqtt.dead_letter.action in cfg.actions


async def test_a_rule_changed_on_its_own_keeps_the_dead_letter_destination(build, plugins):
    from mqferry._runtime.reconfig import apply_rule

    h, dead = await build({"r": {"sql": 'SELECT 1 as one FROM "t/#"'}})
    cfg = validate_config(config({"r": {"sql": 'SELECT payload.x as x FROM "t/#"'}}),
                          plugins.registries(), plugins.function_table())
    plan = await apply_rule(h.app, "r", cfg.rules["r"], cfg)
    assert plan.rules_changed == ["r"] and "payload.x" in h.app.rules["r"].compiled.sql
    mid = h.mqtt.deliver("t/1", b"\xff not json")
    assert h.mqtt.acked == [mid]
    [out] = dead.outputs
    assert out["payload"] == b"\xff not json"
    assert h.app.rules["r"].metrics.snapshot()["failed.exception"] == 1


class KeepingAction(RecordingAction):
    """Keeps each delivery, failing it later: an output buffered in an action."""

    def __init__(self):
        super().__init__("kept:x")
        self.deliveries = []

    def submit(self, output, delivery):
        self.deliveries.append(delivery)


async def test_a_buffered_output_keeps_its_event_only_for_a_dead_letter(build, plugins, tmp_path):
    # with dead letters: the event is kept, and dead-lettered when the output fails later
    h, dead = await build({"r": {"sql": 'SELECT payload FROM "t/#"'}})
    kept = KeepingAction()
    h.app.rules["r"].actions = [kept]
    h.mqtt.deliver("t/1", b"p")
    [delivery] = kept.deliveries
    assert delivery._event is not None
    delivery.fail("failed.render", "late")
    [out] = dead.outputs
    assert (out["reason"], out["payload"]) == ("failed.render", b"p")
    # without: the delivery holds no event (only a dead letter reads it)
    cfg = config({"r": {"sql": 'SELECT payload FROM "t/#"'}})
    del cfg["mqtt"]["dead_letter"]
    plain = build_app(cfg, plugins=plugins, data_dir=tmp_path / "plain")
    await plain.start()
    try:
        kept = KeepingAction()
        plain.app.rules["r"].actions = [kept]
        plain.mqtt.deliver("t/1", b"p")
        [delivery] = kept.deliveries
        assert delivery._event is None
        delivery.fail("failed.render", "late")
        assert plain.app.rules["r"].metrics.get("actions.failed") == 1
        assert plain.mqtt.acked == [1]
    finally:
        await plain.stop()


async def test_without_dead_letters_a_failed_output_still_fails_its_source_record(plugins,
                                                                               tmp_path):
    cfg = config({"k": {"sql": 'SELECT payload FROM "$sources/kafka_consumer:src"'}})
    del cfg["mqtt"]["dead_letter"]
    h = build_app(cfg, plugins=plugins, data_dir=tmp_path)
    await h.start()
    try:
        h.app.rules["k"].actions = [FailingAction("failed.render")]
        with pytest.raises(DeliveryError) as failed:
            await h.app.dispatch({"event": "$bridges/kafka_consumer:src", "payload": "p"})
        assert "failing:x failed an output (failed.render)" in str(failed.value)
    finally:
        await h.stop()

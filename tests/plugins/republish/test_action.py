import asyncio

import pytest

from mqferry import MqttUnavailable
from mqferry._config.models import MqttConfig
from mqferry._mqtt.client import MqttConnector
from mqferry._mqtt.protocol import MqttProtocol
from mqferry.testing import InMemoryMqtt, RecordingDelivery, runtime_context, wait_until
from mqferry_republish.action import RepublishAction
from mqferry_republish.config import RepublishActionConfig
from tests.mqtt.twins import MemoryTransport


def action(mqtt, **params):
    cfg = RepublishActionConfig(parameters=params)
    return RepublishAction(name="r", config=cfg, context=runtime_context(mqtt))


async def settle(delivery):
    await asyncio.wait_for(delivery.done.wait(), 2)
    return delivery.outcome


async def test_emqx_defaults_take_payload_qos_and_retain_from_the_output():
    mqtt = InMemoryMqtt()
    a = action(mqtt, topic="out/${clientid}")
    d = RecordingDelivery()
    a.submit({"clientid": "c1", "payload": "hi", "qos": 1, "retain": True}, d)
    assert await settle(d) == "secured"
    [p] = mqtt.published
    assert (p.topic, p.payload, p.qos, p.retain) == ("out/c1", b"hi", 1, True)


async def test_missing_values_render_undefined_and_fall_back():
    mqtt = InMemoryMqtt()
    a = action(mqtt, topic="out/${nope}", payload="${nope}")
    d = RecordingDelivery()
    a.submit({}, d)
    await settle(d)
    [p] = mqtt.published
    assert (p.topic, p.payload, p.qos, p.retain) == ("out/undefined", b"undefined", 0, False)


async def test_mqtt5_properties_and_user_properties():
    mqtt = InMemoryMqtt()
    a = action(mqtt, topic="t", payload="${.}", qos=1,
               mqtt_properties={"Content-Type": "application/json",
                                "Message-Expiry-Interval": "${ttl}"},
               user_properties="${props}")
    d = RecordingDelivery()
    a.submit({"ttl": 60, "props": {"a": "1"}}, d)
    await settle(d)
    [p] = mqtt.published
    assert p.properties == {"Content-Type": "application/json", "Message-Expiry-Interval": 60,
                            "User-Property": [("a", "1"), ("mqferry-republished", "republish:r")]}


async def test_interrupted_publish_is_retried_until_acknowledged():
    mqtt = InMemoryMqtt(fail_next=[MqttUnavailable("connection lost")])
    a = action(mqtt, topic="t", payload="x", qos=1)
    d = RecordingDelivery()
    a.submit({}, d)
    assert await settle(d) == "secured"
    assert a.metrics.get("retried") == 1
    assert len(mqtt.published) == 1


async def test_a_disconnected_publisher_is_waited_for_and_the_output_secured_once_back():
    mqtt = InMemoryMqtt()
    mqtt.connected.clear()  # publish raises MqttUnavailable while the session is down
    a = action(mqtt, topic="t", payload="x", qos=1)
    d = RecordingDelivery()
    a.submit({}, d)
    await wait_until(lambda: a.metrics.get("retried") >= 1)
    assert d.outcome is None and mqtt.published == []
    mqtt.connected.set()
    assert await settle(d) == "secured"
    assert len(mqtt.published) == 1 and a.metrics.get("failed") == 0


def test_unknown_property_is_a_config_error():
    with pytest.raises(ValueError, match="unknown MQTT 5 property 'Nope'"):
        RepublishActionConfig(parameters={"topic": "t", "mqtt_properties": {"Nope": "x"}})


async def test_user_properties_from_a_json_string_and_the_loop_marker_always_set():
    mqtt = InMemoryMqtt()
    a = action(mqtt, topic="t", payload="x", user_properties="${p}")
    d = RecordingDelivery()
    a.submit({"p": '{"k": 2, "mqferry-republished": "forged"}'}, d)
    await settle(d)
    assert mqtt.published[0].properties == {
        "User-Property": [("k", "2"), ("mqferry-republished", "republish:r")]}


async def test_missing_user_properties_and_properties_are_left_out():
    mqtt = InMemoryMqtt()
    a = action(mqtt, topic="t", payload="x", user_properties="${nope}",
               mqtt_properties={"Content-Type": "${nope}", "Response-Topic": "r/${id}"})
    d = RecordingDelivery()
    a.submit({"id": 7}, d)
    await settle(d)
    assert mqtt.published[0].properties == {
        "Response-Topic": "r/7", "User-Property": [("mqferry-republished", "republish:r")]}


@pytest.mark.parametrize("topic", ["${t}", "a/${t}"])
async def test_a_topic_that_renders_to_a_wildcard_fails_the_delivery(topic):
    mqtt = InMemoryMqtt()
    a = action(mqtt, topic=topic, payload="x")
    d = RecordingDelivery()
    a.submit({"t": "#"}, d)
    assert await settle(d) == "failed:failed.render"
    assert a.metrics.get("failed.render") == 1
    assert mqtt.published == []


async def test_a_refused_publish_fails_the_delivery_with_the_reason():
    from mqferry._errors import DeliveryError

    mqtt = InMemoryMqtt(fail_next=[DeliveryError("failed.refused", "not authorized")])
    a = action(mqtt, topic="t", payload="x", qos=1)
    d = RecordingDelivery()
    a.submit({}, d)
    assert await settle(d) == "failed:failed.refused"
    assert a.metrics.get("failed.refused") == 1


def test_republish_can_target_another_broker_through_an_mqtt_connector(tmp_path):
    from mqferry._config import validate_config
    from mqferry._mqtt import MqttConnector
    from mqferry._plugins import load_plugins
    from mqferry._runtime import App

    plugins = load_plugins()
    data = {
        "connectors": {"mqtt": {"other": {"server": "10.0.0.9:1883", "clientid": "to-other"}}},
        "actions": {"republish": {
            "there": {"connector": "other", "parameters": {"topic": "x"}},
            "here": {"parameters": {"topic": "y"}},
        }},
    }
    app = App(validate_config(data, plugins.registries(), plugins.function_table()),
              data_dir=tmp_path)
    other = app.connectors["mqtt:other"]
    assert isinstance(other, MqttConnector) and other.config.clientid == "to-other"
    assert app.actions["republish:there"]._mqtt is other
    assert app.actions["republish:here"]._mqtt is app.mqtt


def test_republish_names_a_missing_mqtt_connector():
    from mqferry._config import validate_config
    from mqferry._errors import ConfigError
    from mqferry._plugins import load_plugins

    plugins = load_plugins()
    data = {"actions": {"republish": {"r": {"connector": "nope", "parameters": {"topic": "x"}}}}}
    with pytest.raises(ConfigError) as info:
        validate_config(data, plugins.registries(), plugins.function_table())
    assert dict(info.value.problems)["actions.republish.r.connector"] == (
        "no mqtt connector named 'nope'")


def _deep(n):
    out: list = []
    for _ in range(n):
        out = [out]
    return out


async def test_an_output_that_cannot_render_fails_alone():
    mqtt = InMemoryMqtt()
    a = action(mqtt, topic="t/${n}", payload="${deep}")
    bad, good = RecordingDelivery(), RecordingDelivery()
    a.submit({"n": 1, "deep": _deep(300)}, bad)
    a.submit({"n": 2, "deep": [1]}, good)
    assert await settle(bad) == "failed:failed.render"
    assert await settle(good) == "secured"
    assert [p.topic for p in mqtt.published] == ["t/2"]
    assert (a.metrics.get("failed"), a.metrics.get("failed.render")) == (1, 1)


async def test_a_publish_that_raises_anything_settles_its_delivery():
    mqtt = InMemoryMqtt(fail_next=[KeyError("client bug")])
    a = action(mqtt, topic="t", payload="x", qos=1)
    d = RecordingDelivery()
    a.submit({}, d)
    assert await settle(d) == "failed:failed.publish"
    assert a.metrics.get("failed") == 1


@pytest.mark.parametrize("bad", ["out/a\x00b", "out/\x01", "out/\x7f", "out/\x9f", "out/\ufffe"])
async def test_a_topic_that_renders_to_a_character_brokers_refuse_fails_the_delivery(bad):
    mqtt = InMemoryMqtt()
    a = action(mqtt, topic="${t}", payload="x")
    d, good = RecordingDelivery(), RecordingDelivery()
    a.submit({"t": bad}, d)
    a.submit({"t": "out/ok"}, good)
    assert await settle(d) == "failed:failed.render"
    assert await settle(good) == "secured"
    assert [p.topic for p in mqtt.published] == ["out/ok"]


async def test_a_publish_the_mqtt_client_refuses_fails_alone_and_is_not_retried():
    # the real connector, on an in-memory connection: it refuses the NUL in the user property
    conn = MqttConnector(config=MqttConfig(), handler=None)
    fake = MemoryTransport()
    conn._proto = fake.attach(MqttProtocol(on_publish=conn._on_message))
    conn._connected.set()
    a = action(conn, topic="out/${n}", payload="x", qos=0, user_properties="${u}")
    bad, good = RecordingDelivery(), RecordingDelivery()
    a.submit({"n": 1, "u": {"k": "v\x00"}}, bad)
    a.submit({"n": 2, "u": {"k": "v"}}, good)
    assert await settle(bad) == "failed:failed.invalid"
    assert await settle(good) == "secured"
    conn._proto.flush()
    assert b"out/2" in fake.sent and b"out/1" not in fake.sent
    assert (a.metrics.get("failed"), a.metrics.get("failed.invalid"),
            a.metrics.get("retried")) == (1, 1, 0)


async def test_a_stream_of_unpublishable_topics_is_counted_each_and_logged_once_a_second(caplog):
    mqtt = InMemoryMqtt()
    a = action(mqtt, topic="${t}", payload="x")
    ds = [RecordingDelivery() for _ in range(50)]
    with caplog.at_level("WARNING", logger="mqferry_republish.action"):
        for d in ds:
            a.submit({"t": "a/\u0000b"}, d)
        assert [await settle(d) for d in ds] == ["failed:failed.render"] * 50
    assert a.metrics.get("failed.render") == 50
    lines = [r for r in caplog.records if "not a valid MQTT topic name" in r.getMessage()]
    assert len(lines) == 1

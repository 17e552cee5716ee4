import asyncio

import aiomqtt
import pytest

from mqferry.testing import InMemoryMqtt, RecordingDelivery, runtime_context
from mqferry_republish.action import RepublishAction
from mqferry_republish.config import RepublishActionConfig


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
                            "User-Property": {"a": "1"}}


async def test_interrupted_publish_is_retried_until_acknowledged():
    mqtt = InMemoryMqtt(fail_next=[aiomqtt.MqttError("connection lost")])
    a = action(mqtt, topic="t", payload="x", qos=1)
    d = RecordingDelivery()
    a.submit({}, d)
    assert await settle(d) == "secured"
    assert a.metrics.get("retried") == 1
    assert len(mqtt.published) == 1


def test_unknown_property_is_a_config_error():
    with pytest.raises(ValueError, match="unknown MQTT 5 property 'Nope'"):
        RepublishActionConfig(parameters={"topic": "t", "mqtt_properties": {"Nope": "x"}})

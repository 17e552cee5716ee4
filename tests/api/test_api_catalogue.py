"""GET /rule_functions and /rule_events: what the SQL editor completes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mqferry._api.catalogue import MESSAGE_COLUMNS
from mqferry._runtime.events import message_event


async def test_every_function_of_the_table_is_listed_with_its_arguments(client, controller):
    r = await client.get("/rule_functions")
    assert r.status_code == 200
    funcs = {f["name"]: f for f in r.json()}
    assert set(funcs) == set(controller.plugins.function_table())
    assert len(funcs["nth"]["args"]) == 2
    assert (funcs["nth"]["min_args"], funcs["nth"]["max_args"]) == (2, 2)
    assert funcs["upper"]["description"] == "Upper-case."
    # Event accessors do not show the event as an argument.
    assert funcs["clientid"]["args"] == []


async def test_events_list_the_columns_of_mqtt_messages_and_of_each_source_type(client):
    events = {e["event"]: e for e in (await client.get("/rule_events")).json()}
    publish = [c["name"] for c in events["message.publish"]["columns"]]
    assert {"payload", "topic", "qos", "clientid", "timestamp"} <= set(publish)
    kafka = events["$bridges/kafka_consumer:*"]
    assert kafka["source_type"] == "kafka_consumer"
    assert [c["name"] for c in kafka["columns"]][:3] == ["value", "key", "topic"]


@pytest.mark.parametrize("props", [None, SimpleNamespace(UserProperty=[("clientid", "c")])])
def test_the_listed_message_columns_are_those_of_a_real_event(props):
    msg = SimpleNamespace(topic="t", payload=b"{}", qos=1, retain=False, dup=False,
                          properties=props)
    listed = {name for name, _ in MESSAGE_COLUMNS}
    assert set(message_event(msg, "n@h")) <= listed


def test_the_kafka_columns_are_those_of_a_record_event():
    from aiokafka.structs import ConsumerRecord

    from mqferry_kafka_consumer.message import EVENT_COLUMNS, record_message

    rec = ConsumerRecord("t", 0, 5, 1, 0, b"k", b"v", None, 1, 1, [])
    listed = [name for name, _ in EVENT_COLUMNS]
    # The source adds event and timestamp, the runtime node.
    assert sorted([*record_message(rec, "none", "none"), "event", "node", "timestamp"]) == sorted(
        listed)

"""The action page shows a message Kafka could not take: its failure counter and the last error.

In a real browser against a real ``mqferry run``, Mosquitto and Kafka (issue #17, item 6).
"""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.integration, pytest.mark.browser]

BIG = 1_200_000  # above the topic's max.message.bytes (1048588 by default)


def test_a_message_too_large_for_kafka_is_on_the_action_page(
        instance_factory, console, mqtt_broker, kafka_bootstrap, new_topic, mosquitto_pub,
        kcat_consume):
    p = f"ui-big-{uuid.uuid4().hex[:8]}"
    sink = new_topic()
    inst = instance_factory({
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}",
                 "clientid": f"mqferry-{p}"},
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {"sink": {"connector": "k", "parameters": {
            "topic": sink, "message": {"key": "", "value": "${payload}"}}}}},
        "rules": {"r": {"sql": f'SELECT payload FROM "{p}/#"',
                        "actions": ["kafka_producer:sink"]}},
    })
    inst.proc.wait_ready(actions=1)
    mosquitto_pub(f"{p}/a", "first")
    assert [r["payload"] for r in kcat_consume(sink, 1)] == ["first"]
    mosquitto_pub(f"{p}/a", b"x" * BIG)
    mosquitto_pub(f"{p}/a", "after")
    assert [r["payload"] for r in kcat_consume(sink, 2)] == ["first", "after"]

    ui = console(inst)
    page = ui.page
    ui.go("/actions/kafka_producer:sink")
    ui.heading("Action kafka_producer:sink")
    last = page.locator("dd.last-error")
    expect(last).to_contain_text("failed.too_large")
    expect(last).to_contain_text(f"a record of {BIG} bytes")
    expect(last).to_contain_text("max.message.bytes = 1048588")
    expect(page.locator(".metric", has_text="failed.too_large")).to_contain_text("1")
    ui.shot("action-last-error")
    assert ui.errors == []

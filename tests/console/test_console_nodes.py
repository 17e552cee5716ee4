"""The Nodes page lists the instance's node (alone without a cluster) with its status, version,
uptime, load and what runs on it; an action's page shows its metrics by node.

In a real browser against a real ``mqferry run``, Mosquitto and Kafka.
"""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from mqferry._version import __version__

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_the_nodes_page_and_the_metrics_by_node(instance_factory, console, mqtt_broker,
                                                kafka_bootstrap, new_topic, mosquitto_pub,
                                                kcat_consume):
    p = f"ui-nodes-{uuid.uuid4().hex[:8]}"
    node = f"{p}@here"
    sink = new_topic()
    inst = instance_factory({
        "node": node,
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": f"mqferry-{p}"},
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {"sink": {"connector": "k", "parameters": {
            "topic": sink, "message": {"key": "", "value": "${payload}"}}}}},
        "rules": {"r": {"sql": f'SELECT payload FROM "{p}/#"',
                        "actions": ["kafka_producer:sink"]}},
    })
    inst.proc.wait_ready(actions=1)
    mosquitto_pub(f"{p}/a", "one")
    assert [r["payload"] for r in kcat_consume(sink, 1)] == ["one"]

    ui = console(inst)
    page = ui.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Nodes").click()
    ui.heading("Nodes")
    row = ui.row(node)
    expect(row).to_contain_text("running")
    expect(row).to_contain_text(__version__)
    expect(row).to_contain_text(re.compile(r"pid \d+ on "))
    expect(row).to_contain_text("1 rule")
    expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^\d+[smhd]( \d+[smhd])?$"))
    expect(row.locator("td").nth(4)).to_have_text(re.compile(r"^[\d.]+ / [\d.]+ / [\d.]+$"))
    expect(row.locator("td").nth(5)).to_contain_text("iB")
    expect(page.locator("table[aria-label=Nodes] tbody tr")).to_have_count(1)
    ui.shot("nodes")

    ui.go("/actions/kafka_producer:sink")
    ui.heading("Action kafka_producer:sink")
    by_node = page.get_by_role("table", name="Metrics by node")
    node_row = by_node.locator(f'tr[data-id="{node}"]')
    expect(node_row).to_be_visible()
    header = [t.strip() for t in by_node.locator("thead th").all_text_contents()]
    assert header[0] == "Node"
    success = header.index("success")
    expect(node_row.locator("td").nth(success)).to_have_text("1")
    ui.shot("action-by-node")
    assert ui.errors == []

"""The console's rule page says why a rule failed: the last error, its time, topic and reason.

A real ``mqferry run`` against Mosquitto; mosquitto_pub sends a message the rule cannot decode;
headless Chromium shows the rule page, which picks the failure up while open.
"""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_the_rule_page_shows_the_last_error(instance_factory, console, mqtt_broker,
                                            mosquitto_pub):
    p = f"ui-{uuid.uuid4().hex[:8]}"
    inst = instance_factory({
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": f"mqferry-{p}"},
        "actions": {"republish": {"echo": {"parameters": {"topic": f"{p}/echo",
                                                          "payload": "${j}"}}}},
        "rules": {"dec": {"sql": f'SELECT json_decode(payload) AS j FROM "{p}/#"',
                          "actions": ["republish:echo"]}},
    })
    inst.proc.wait_for_log("connected to MQTT broker")
    ui = console(inst)
    page = ui.page
    ui.go("/rules/dec")
    ui.heading("Rule dec")
    box = page.get_by_role("status", name="Last error")
    expect(box).to_have_count(0)  # no failure yet: nothing is shown
    mosquitto_pub(f"{p}/room-7", b"not json {", qos=1)
    expect(box).to_contain_text(f"on {p}/room-7: failed.exception", timeout=15_000)
    expect(box).to_contain_text("json_decode")
    expect(box).to_contain_text("not json {")
    expect(box).to_contain_text(re.compile(r"\d{4}|\d{1,2}:\d{2}"))  # when
    # the form is not reset by the polling: an edit stays
    page.locator("#rule-desc").fill("being edited")
    page.wait_for_timeout(2500)
    expect(page.locator("#rule-desc")).to_have_value("being edited")
    ui.shot("rule-last-error")
    assert ui.errors == []

"""The console during operations, in a real browser against a real ``mqferry run`` and Mosquitto:
charts that start with the last hour, the flow view's edges, names and labels, SQL completion,
the ``mqtt`` section and inline actions edited in forms."""

from __future__ import annotations

import json
import re
import time
import uuid

import httpx
import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.integration, pytest.mark.browser]

LONG = "factory-line-42/station-7/sensors/+/temperature"


def _config(broker, p: str) -> dict:
    return {
        "mqtt": {"server": f"{broker.host}:{broker.port}",
                 "clientid": f"mqferry-ui-{uuid.uuid4().hex[:8]}"},
        "actions": {"republish": {"echo": {"parameters": {"topic": f"{p}/echo",
                                                          "payload": "${payload}"}}}},
        "rules": {
            "two": {"sql": f'SELECT * FROM "{p}/a/#", "{p}/b/#"',
                    "actions": ["republish:echo"]},
            "long": {"sql": f'SELECT * FROM "{p}/{LONG}"', "actions": ["republish:echo"]},
            "inline": {"sql": f'SELECT payload FROM "{p}/in/#"',
                       "actions": [{"function": "republish",
                                    "args": {"topic": f"{p}/inline", "payload": "${payload}"}}]},
        },
    }


def _api(inst) -> httpx.Client:
    return httpx.Client(base_url=f"{inst.url}/api/v5", auth=inst.key, timeout=10)


def test_charts_start_with_the_hour_before_the_page_opened(instance_factory, console,
                                                           mqtt_broker, mosquitto_pub):
    p = f"ui-{uuid.uuid4().hex[:8]}"
    inst = instance_factory(_config(mqtt_broker, p))
    for i in range(5):
        mosquitto_pub(f"{p}/a/{i}", json.dumps({"n": i}), qos=1)
    # The instance samples every 5 s from its start; wait for three samples with the messages.
    with _api(inst) as api:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            h = api.get("/actions/republish:echo/metrics/history").json()
            if len(h["t"]) >= 3 and h["metrics"].get("matched", [0])[-1] >= 5:
                break
            time.sleep(1)
        assert len(h["t"]) >= 3, h
        kept = len(h["t"])
    ui = console(inst)
    page = ui.page
    ui.go("/actions/republish:echo")
    ui.heading("Action republish:echo")
    expect(page.get_by_text(re.compile(r"\d+ samples from the server's history"))).to_be_visible()
    # At once, before a second live poll: the server's samples are drawn, older than the page.
    rate = page.locator('.chart polyline[data-series="rate"]').first
    expect(rate).to_have_attribute("points", re.compile(r"\d"))
    points = rate.get_attribute("points").split()
    assert len(points) >= kept, points
    xs = [float(pt.split(",")[0]) for pt in points]
    five = page.get_by_role("button", name="Last 5 minutes")
    five.click()
    expect(five).to_have_attribute("aria-pressed", "true")
    short = [float(pt.split(",")[0]) for pt in rate.get_attribute("points").split()]
    # On the 5-minute axis the history spreads over at least ten seconds (about 18 px).
    assert max(short) - min(short) > 15, (xs, short)
    ui.shot("action-history")
    assert ui.errors == []


def _path_ends(page, edge: str) -> list[float]:
    return page.evaluate("""(sel) => {
        const p = document.querySelector(sel + ' path');
        const end = p.getPointAtLength(p.getTotalLength());
        return [end.x, end.y];
    }""", f'[data-edge="{edge}"]')


def test_flow_edges_names_and_labels(instance_factory, console, mqtt_broker):
    p = f"ui-{uuid.uuid4().hex[:8]}"
    inst = instance_factory(_config(mqtt_broker, p))
    ui = console(inst)
    page = ui.page
    ui.go("/flow")
    ui.heading("Flow")
    # Each topic filter has its own edge to the rule, ending at its own point.
    a, b = f"mqtt-in/{p}/a/#>rule/two", f"mqtt-in/{p}/b/#>rule/two"
    expect(page.locator(f'[data-edge="{a}"]')).to_be_visible()
    expect(page.locator(f'[data-edge="{b}"]')).to_be_visible()
    assert _path_ends(page, a) != _path_ends(page, b)
    assert "skip" not in (page.locator(f'[data-edge="{a}"]').get_attribute("class") or "")
    # A name too long for its box is shown in full on hover, and to keyboard focus.
    node = page.locator(f'[data-node="mqtt-in/{p}/{LONG}"]')
    expect(node.locator("text")).to_contain_text("…")
    node.hover()
    tip = page.get_by_role("tooltip")
    expect(tip).to_have_text(f"MQTT topic filter: {p}/{LONG}")
    ui.shot("flow-tooltip")
    page.locator('[data-node="rule/inline"]').focus()
    expect(tip).to_have_text("Rule: inline (enabled)")
    # Rate labels: none lies on another edge.
    expect(page.locator(".edge-rate").first).to_be_visible()
    overlaps = page.evaluate("""() => {
        const out = [];
        const edges = [...document.querySelectorAll('.flow .edge')];
        for (const e of edges) {
            const label = e.querySelector('.edge-rate');
            if (!label) continue;
            const box = label.getBBox();
            for (const other of edges) {
                if (other === e) continue;
                const path = other.querySelector('path');
                const len = path.getTotalLength();
                for (let d = 0; d <= len; d += 1) {
                    const pt = path.getPointAtLength(d);
                    if (pt.x > box.x && pt.x < box.x + box.width
                        && pt.y > box.y && pt.y < box.y + box.height) {
                        out.push([e.dataset.edge, other.dataset.edge]);
                        break;
                    }
                }
            }
        }
        return [out, document.querySelectorAll('.flow .edge-rate').length];
    }""")
    hits, labels = overlaps
    assert labels >= 3
    assert hits == []
    assert ui.errors == []


def test_sql_completion_of_functions_and_columns(instance_factory, console, mqtt_broker):
    p = f"ui-{uuid.uuid4().hex[:8]}"
    inst = instance_factory(_config(mqtt_broker, p))
    ui = console(inst)
    page = ui.page
    # A slow machine, as CI's: the catalogue (GET /rule_functions) arrives after typing began,
    # and the page runs slowly; the editor suggests once the catalogue is in, without a new key.
    held = []

    def hold(route):  # a plain function: Playwright cannot wrap a bound builtin as a handler
        held.append(route)

    page.route("**/rule_functions*", hold)
    ui.go("/rules/new")
    ui.heading("Create rule")
    sql = page.locator("#rule-sql")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": 8})
    sql.fill("")
    sql.press_sequentially("SELECT up")
    options = page.get_by_role("listbox", name="Completions").get_by_role("option")
    expect(options).to_have_count(0)
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page never asked for the function catalogue"
    for route in held:
        route.continue_()
    expect(options.first).to_contain_text("upper(s)")
    ui.shot("sql-completion-function")
    sql.press("Enter")
    # Keys typed while the insertion re-renders stay after it and reopen the list by themselves.
    sql.press_sequentially("clie")
    expect(sql).to_have_value("SELECT upper(clie")
    expect(options.first).to_contain_text("clientid")
    expect(options.first).to_contain_text("col")
    sql.press("Tab")
    expect(sql).to_have_value("SELECT upper(clientid")
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
    # A Kafka source's columns when FROM selects one; arrows choose.
    sql.fill('SELECT \nFROM "$bridges/kafka_consumer:src"')
    sql.evaluate("t => t.setSelectionRange(7, 7)")
    sql.press_sequentially("t")
    labels = options.all_text_contents()
    assert any(t.startswith("col") and "topic" in t for t in labels), labels
    assert any("ts_type" in t for t in labels), labels
    sql.press("Escape")
    expect(page.get_by_role("listbox", name="Completions")).to_have_count(0)
    sql.press_sequentially("s_")
    expect(options).to_have_count(1)
    expect(options.first).to_contain_text("ts_type")
    sql.press("Enter")
    expect(sql).to_have_value('SELECT ts_type\nFROM "$bridges/kafka_consumer:src"')
    assert ui.errors == []


def test_the_mqtt_section_and_inline_actions_are_edited_in_forms(
        instance_factory, console, mqtt_broker, mosquitto_pub, mosquitto_sub):
    p = f"ui-{uuid.uuid4().hex[:8]}"
    inst = instance_factory(_config(mqtt_broker, p))
    ui = console(inst)
    page = ui.page

    with _api(inst) as api:  # nothing to restart for before anything was saved
        assert api.get("/mqtt").json()["restart_needed"] is False

    # The mqtt section: a bad value is named at its field and nothing is saved.
    ui.go("/mqtt")
    ui.heading("MQTT")
    server = page.locator("#f-server")
    expect(server).to_have_value(f"{mqtt_broker.host}:{mqtt_broker.port}")
    server.fill("not a host")
    ui.button("Save").click()
    expect(page.locator('[data-field="server"] .field-error')).to_contain_text("host")
    server.fill(f"{mqtt_broker.host}:{mqtt_broker.port}")
    page.locator("#f-clientid").fill("edited-in-console")
    ui.button("Save").click()
    # "Saved.": the answer to this PUT (the file is written by then), not the notice that the
    # running session's settings differ, which says "restart mqferry to apply" too
    ui.notice("Saved. Restart mqferry to apply")
    ui.shot("mqtt-section")
    saved = inst.proc.saved(lambda d: d["mqtt"].get("clientid") == "edited-in-console")["mqtt"]
    assert "receive_maximum" not in saved  # defaults are not written out
    with _api(inst) as api:
        assert api.get("/mqtt").json()["restart_needed"] is True

    # An inline action: its arguments in a form; a change is applied at once.
    ui.go("/rules/inline")
    ui.heading("Rule inline")
    topic = page.locator("#f-inline0-topic")
    expect(topic).to_have_value(f"{p}/inline")
    topic.fill(f"{p}/inline2")
    ui.button("Save").click()
    with _api(inst) as api:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            args = api.get("/rules/inline").json()["actions"][0]["args"]
            if args["topic"] == f"{p}/inline2":
                break
            time.sleep(0.2)
    assert args == {"topic": f"{p}/inline2", "payload": "${payload}"}
    with mosquitto_sub([f"{p}/inline2"], 1) as sub:
        mosquitto_pub(f"{p}/in/1", "hello", qos=1)
        [msg] = sub.wait(30)
    assert msg.payload == b"hello"
    # The page reloads the saved rule after its PUT and resets the form from it: an action
    # added before that reload ends would be wiped (Save is disabled until it has ended).
    expect(ui.button("Save")).to_be_enabled()
    # A new inline action without its required topic is refused at that field.
    ui.button("Add inline action").click()
    ui.button("Save").click()
    expect(page.locator('[data-field="inline1.topic"] .field-error')).to_contain_text("required")
    ui.shot("inline-actions")
    ui.button("Remove inline action 2").click()
    assert ui.errors == []

"""The console in a real browser against a real ``mqferry run``, Kafka and Mosquitto.

Everything is set up through the console's pages (connectors, actions, sources, rules); messages
then go in with mosquitto_pub or kcat, and independent witnesses (kcat, mosquitto_sub) check what
came out, while the pages' counters move. Screenshots of every page land in
``tests/console/artifacts/<test>/``.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.console.conftest import free_port

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@contextlib.contextmanager
def _stream(broker, topic: str, per_second: float) -> Iterator[None]:
    """Publishes numbered messages with ``mosquitto_pub -l`` until the block ends."""
    exe = shutil.which("mosquitto_pub")
    assert exe is not None, "mosquitto_pub is not installed (scripts/services.sh install)"
    proc = subprocess.Popen([exe, "-h", broker.host, "-p", str(broker.port), "-V", "5", "-q", "1",
                             "-t", topic, "-l"], stdin=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    stop = threading.Event()

    def feed() -> None:
        n = 0
        while not stop.wait(1 / per_second):
            proc.stdin.write(json.dumps({"n": n}) + "\n")
            proc.stdin.flush()
            n += 1

    thread = threading.Thread(target=feed, name="stream", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        proc.stdin.close()
        proc.wait(30)


def _mqtt(broker):
    return {"server": f"{broker.host}:{broker.port}",
            "clientid": f"mqferry-ui-{uuid.uuid4().hex[:8]}"}


def test_mqtt_to_kafka_set_up_in_the_console(instance_factory, console, mqtt_broker, new_topic,
                                            kafka_bootstrap, mosquitto_pub, kcat_consume):
    topic = new_topic()
    p = f"ui-{uuid.uuid4().hex[:8]}"
    inst = instance_factory({"mqtt": _mqtt(mqtt_broker)})
    ui = console(inst)
    page = ui.page

    # A connection test that fails says why, and nothing is saved.
    ui.go("/connectors/new")
    page.locator("#f-type").select_option("kafka_producer")
    page.locator("#f-name").fill("unreachable")
    page.locator("#f-bootstrap_hosts").fill(f"127.0.0.1:{free_port()}")
    ui.button("Test connection").click()
    ui.alert("TEST_FAILED")
    ui.shot("connector-test-failed")

    ui.create_connector("kafka_producer", "kafka1", kafka_bootstrap)
    expect(page.locator(".session .status")).to_have_text("connected")  # the MQTT session
    expect(ui.row("kafka_producer:unreachable")).to_have_count(0)

    # The action (sink): the form comes from the type's settings model.
    ui.go("/actions/new")
    page.locator("#f-type").select_option("kafka_producer")
    page.locator("#f-name").fill("sink1")
    page.locator("#f-connector").select_option("kafka1")
    ui.button("Create").click()
    # A missing required field is named next to the field.
    expect(page.locator('[data-field="parameters.topic"] .field-error')).to_contain_text("required")
    page.locator("#f-parameters-topic").fill(topic)
    page.get_by_text("Advanced settings").first.click()  # folded as in EMQX
    expect(page.locator("#f-parameters-partition_strategy")).to_be_visible()
    ui.shot("action-form")
    ui.button("Create").click()
    ui.heading("Action kafka_producer:sink1")
    expect(page.locator(".facts .status")).to_have_text("connected")

    # The rule: a syntax error is shown at its line and column, then the tester runs the SQL.
    ui.go("/rules/new")
    page.locator("#rule-id").fill("r1")
    sql = page.locator("#rule-sql")
    sql.fill(f'SELECT payload.n AS n, clientid\nFORM "{p}/#"')
    page.get_by_label("kafka_producer:sink1").check()
    ui.button("Create").click()
    ui.alert(re.compile(r"Line 2, column 1:.*FORM"))
    expect(page.locator(".sql-line.err-line")).to_have_text(f'FORM "{p}/#"')
    ui.shot("rule-sql-error")
    sql.fill(f'SELECT payload.n AS n, clientid\nFROM "{p}/#"')
    page.locator("#rule-context").fill(json.dumps({"topic": f"{p}/x", "payload": '{"n": 41}',
                                                   "clientid": "tester"}))
    ui.button("Test SQL").click()
    out = page.locator("pre.output")
    expect(out).to_contain_text('"n": 41')
    expect(out).to_contain_text('"clientid": "tester"')
    ui.button("Create").click()
    ui.heading("Rule r1")
    expect(sql).to_have_value(f'SELECT payload.n AS n, clientid\nFROM "{p}/#"')
    # The saved rule's tester shows the Kafka record the action would write.
    ui.button("Test saved rule's actions").click()
    expect(out).to_contain_text(topic)
    ui.shot("rule-saved-test")

    count = 5
    for i in range(count):
        mosquitto_pub(f"{p}/dev{i}", json.dumps({"n": i}), qos=1)

    records = kcat_consume(topic, count, timeout=60)
    assert sorted(json.loads(r["payload"])["n"] for r in records) == list(range(count))

    ui.go("/rules")
    row = ui.row("r1")
    expect(row.locator('[data-counter="matched"]')).to_have_text(str(count))
    expect(row.locator('[data-counter="passed"]')).to_have_text(str(count))
    expect(row.locator('[data-counter="failed"]')).to_have_text("0")
    ui.shot("rules-list")

    ui.go("/actions/kafka_producer:sink1")
    expect(page.locator(".rule-links")).to_have_text("r1")  # the rules that use it
    success = page.locator(".metric", has_text="success").locator(".metric-value")
    expect(success).to_have_text(str(count))
    expect(page.locator(".chart polyline").first).to_have_attribute("points", re.compile(r"\d"))
    ui.shot("action-detail")
    ui.button("Reset metrics").click()
    expect(success).to_have_text("0")

    # Editing keeps what is not shown changed: a new description, the connector still connected.
    ui.go("/connectors/kafka_producer:kafka1/edit")
    description = page.locator("#f-description")
    expect(description).to_be_editable()
    expect(page.locator("#f-bootstrap_hosts")).to_have_value(kafka_bootstrap)
    description.fill("edited in the console")
    ui.button("Save").click()
    ui.heading("Connectors")
    ui.wait_status("kafka_producer:kafka1")
    with httpx.Client(base_url=f"{inst.url}/api/v5", auth=inst.key) as api:
        conn = api.get("/connectors/kafka_producer:kafka1").json()
    assert conn["description"] == "edited in the console"
    assert conn["bootstrap_hosts"] == kafka_bootstrap

    ui.go("/flow")
    for node in (f"mqtt-in/{p}/#", "rule/r1", "action/kafka_producer:sink1", f"kafka-out/{topic}"):
        expect(page.locator(f'[data-node="{node}"]')).to_be_visible()
    # While messages flow, the edges show their rates.
    with _stream(mqtt_broker, f"{p}/stream", per_second=20):
        edge = page.locator('[data-edge="rule/r1>action/kafka_producer:sink1"]')
        expect(edge.locator(".edge-rate")).to_have_text(re.compile(r"^[1-9][0-9.]*/s$"))
        expect(edge).to_have_class(re.compile(r"\blive\b"))
        ui.shot("flow")
    # Clicking a node opens its page.
    page.locator('[data-node="action/kafka_producer:sink1"]').click()
    ui.heading("Action kafka_producer:sink1")

    # Deleting a connector in use is refused with the reason.
    ui.go("/connectors")
    page.once("dialog", lambda d: d.accept())
    ui.row("kafka_producer:kafka1").get_by_role("button", name="Delete").click()
    ui.alert("cannot delete connector kafka_producer:kafka1: used by kafka_producer:sink1")
    ui.shot("connector-delete-refused")

    # Disabling the rule from the list is saved.
    ui.go("/rules")
    page.get_by_label("Enable rule r1").uncheck()
    expect(page.get_by_label("Enable rule r1")).not_to_be_checked()
    with httpx.Client(base_url=f"{inst.url}/api/v5", auth=inst.key) as api:
        assert api.get("/rules/r1").json()["enable"] is False
    assert ui.errors == []


def test_kafka_to_mqtt_set_up_in_the_console(instance_factory, console, mqtt_broker, new_topic,
                                            kafka_bootstrap, kcat_produce, mosquitto_sub):
    kafka_topic = new_topic()
    p = f"ui-{uuid.uuid4().hex[:8]}"
    src = f"src-{p}"  # the consumer group is named after the source: a new one joins at once
    inst = instance_factory({"mqtt": _mqtt(mqtt_broker)})
    ui = console(inst)
    page = ui.page

    ui.create_connector("kafka_consumer", "kin", kafka_bootstrap)

    ui.go("/sources/new")
    page.locator("#f-type").select_option("kafka_consumer")
    page.locator("#f-name").fill(src)
    page.locator("#f-connector").select_option("kin")
    ui.button("Add topic mapping").click()
    page.locator("#f-parameters-topic_mapping-0-kafka_topic").fill(kafka_topic)
    page.locator("#f-parameters-topic_mapping-0-mqtt_topic").fill(f"{p}/mapped")
    page.locator("#f-parameters-topic_mapping-0-qos").select_option("1")
    ui.shot("source-form")
    ui.button("Create").click()
    ui.heading(f"Source kafka_consumer:{src}")
    expect(page.locator(".facts .status")).to_have_text("connected")
    # "latest" is pinned at the first assignment: records produced after it are read.
    inst.proc.wait_for_log(f"partitions assigned: {kafka_topic}/0")

    # A republish action and a rule selecting the source's records.
    ui.go("/actions/new")
    page.locator("#f-type").select_option("republish")
    page.locator("#f-name").fill("back")
    page.locator("#f-parameters-topic").fill(f"{p}/rule/${{key}}")
    page.locator("#f-parameters-payload").fill("${value}")
    ui.button("Create").click()
    ui.heading("Action republish:back")

    ui.go("/rules/new")
    page.locator("#rule-id").fill("from_kafka")
    page.locator("#rule-sql").fill(f'SELECT value, key\nFROM "$bridges/kafka_consumer:{src}"')
    page.get_by_role("button", name=f"Kafka record ({src})").click()
    ui.button("Test SQL").click()
    expect(page.locator("pre.output")).to_contain_text('"key": "k1"')
    page.get_by_label("republish:back").check()
    ui.button("Create").click()
    ui.heading("Rule from_kafka")

    count = 4
    with mosquitto_sub([f"{p}/mapped", f"{p}/rule/#"], count * 2) as sub:
        kcat_produce(kafka_topic, [json.dumps({"i": i}) for i in range(count)], key="k7")
        got = sub.wait(60)
    by_topic: dict[str, list[str]] = {}
    for m in got:
        by_topic.setdefault(m.topic, []).append(m.payload)
    assert sorted(by_topic) == [f"{p}/mapped", f"{p}/rule/k7"]
    assert sorted(by_topic[f"{p}/rule/k7"]) == [json.dumps({"i": i}).encode() for i in range(count)]

    ui.go("/rules")
    expect(ui.row("from_kafka").locator('[data-counter="matched"]')).to_have_text(str(count))
    ui.go(f"/sources/kafka_consumer:{src}")
    expect(page.locator(".metric", has_text="received").locator(".metric-value")).to_have_text(
        str(count))
    ui.shot("source-detail")
    ui.go("/sources")
    ui.wait_status(f"kafka_consumer:{src}")
    ui.shot("sources-list")
    ui.go("/flow")
    for node in (f"kafka-in/{kafka_topic}", f"source/kafka_consumer:{src}", "rule/from_kafka",
                 "action/republish:back", f"mqtt-out/{p}/mapped"):
        expect(page.locator(f'[data-node="{node}"]')).to_be_visible()
    ui.shot("flow")
    assert ui.errors == []


def test_a_thousand_rules_narrow_windows_and_the_keyboard(instance_factory, console, mqtt_broker,
                                                         kafka_bootstrap):
    n = 1000
    rules = {f"rule_{i:04d}": {"sql": f'SELECT * FROM "load/{i}/#"', "description": f"rule {i}"}
             for i in range(n)}
    inst = instance_factory({"mqtt": _mqtt(mqtt_broker), "rules": rules})
    ui = console(inst)
    page = ui.page

    started = time.monotonic()
    ui.go("/rules")
    expect(page.get_by_text(f"{n} of {n} rules")).to_be_visible()
    expect(ui.row("rule_0000").locator('[data-counter="matched"]')).to_have_text("0")
    list_s = time.monotonic() - started
    ui.shot("rules-1000")
    page.get_by_label("Filter rules").fill("rule_0999")
    expect(page.get_by_text(f"1 of {n} rules")).to_be_visible()
    expect(ui.row("rule_0999")).to_be_visible()

    started = time.monotonic()
    ui.go("/flow")
    expect(page.locator('[data-node="rule/rule_0999"]')).to_be_attached()
    flow_s = time.monotonic() - started
    (ui.shots / "timings.json").write_text(json.dumps(
        {"rules": n, "rules_page_s": round(list_s, 3), "flow_page_s": round(flow_s, 3)}))
    # Generous: only a page that hangs or is quadratic fails (the machine is shared and noisy).
    assert list_s < 20 and flow_s < 20, (list_s, flow_s)

    # Keyboard only: the main navigation, the rule link and the SQL editor's way out.
    ui.go("/connectors")
    ui.heading("Connectors")  # and the focus on the heading, where a screen reader starts
    page.get_by_role("link", name="Rules").focus()
    page.keyboard.press("Enter")
    ui.heading("Rules")
    page.get_by_label("Filter rules").focus()
    page.keyboard.type("rule_0007")
    expect(page.get_by_text(f"1 of {n} rules")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="rule_0007")).to_be_focused()
    page.keyboard.press("Enter")
    ui.heading("Rule rule_0007")
    page.locator("#rule-sql").focus()
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    expect(page.locator("#rule-sql")).not_to_be_focused()
    ui.go("/flow")
    ui.heading("Flow")
    page.locator('[data-node="rule/rule_0007"]').focus()
    page.keyboard.press("Enter")
    ui.heading("Rule rule_0007")

    # A narrow window: every page still lays out without horizontal page scroll.
    page.set_viewport_size({"width": 420, "height": 800})
    pages = (("/connectors", "Connectors"), ("/rules", "Rules"),
             ("/rules/rule_0001", "Rule rule_0001"), ("/connectors/new", "Create connector"),
             ("/actions", "Actions (sinks)"), ("/sources", "Sources"), ("/flow", "Flow"))
    for path, title in pages:
        ui.go(path)
        ui.heading(title)
        expect(page.get_by_text("Loading…")).to_have_count(0)
        name = path.strip("/").replace("/", "-")
        ui.shot(f"narrow-{name}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 420px"
    assert ui.errors == []


def test_a_wrong_key_is_refused_and_signing_out_forgets_the_key(instance_factory, console,
                                                                 chromium, mqtt_broker):
    inst = instance_factory({"mqtt": _mqtt(mqtt_broker)})
    ctx = chromium.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = ctx.new_page()
        page.goto(f"{inst.url}/dashboard/")
        page.get_by_label("API key").fill(inst.key[0])
        page.get_by_label("API secret").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("The API key or secret is wrong.")
    finally:
        ctx.close()
    ui = console(inst)
    ui.shot("signed-in")
    ui.button("Sign out").click()
    expect(ui.page.get_by_label("API secret")).to_be_visible()
    ui.page.reload()
    expect(ui.page.get_by_label("API secret")).to_be_visible()
    ui.shot("sign-in")

"""Overlapping topic filters against Mosquitto, which sends a copy per matching subscription:
each rule still runs once per message, and a persistent session's leftover subscriptions are
unsubscribed when mqferry comes back."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.mqferry_process import MqferryProcess

pytestmark = pytest.mark.integration


def config(mqtt, clientid: str, rules: dict[str, list[str]], p: str) -> dict:
    return {
        "mqtt": {"server": f"{mqtt.host}:{mqtt.port}", "clientid": clientid},
        "rules": {
            name: {"sql": "SELECT payload, topic FROM " + ", ".join(f'"{f}"' for f in filters),
                   "actions": [{"function": "republish", "args": {
                       "topic": f"{p}/out/{name}", "payload": "${payload}", "qos": 1}}]}
            for name, filters in rules.items()},
    }


def run(tmp_path: Path, cfg: dict) -> MqferryProcess:
    app = MqferryProcess(cfg, tmp_path).start()
    app.wait_ready()
    time.sleep(0.5)  # the subscriptions are in place
    return app


def by_rule(messages) -> dict[str, list[str]]:
    got: dict[str, list[str]] = {}
    for m in messages:
        got.setdefault(m.topic.rsplit("/", 1)[1], []).append(m.text)
    return {k: sorted(v) for k, v in got.items()}


def test_each_rule_runs_once_per_message_whatever_the_other_rules_filters(
        tmp_path, mqtt_broker, mosquitto_pub, mosquitto_sub):
    p = f"ovl-{uuid.uuid4().hex[:6]}"
    rules = {"wide": [f"{p}/in/#"], "one": [f"{p}/in/+"], "exact": [f"{p}/in/a"],
             "both": [f"{p}/in/+", f"{p}/in/#"], "other": [f"{p}/else/#"]}
    app = run(tmp_path, config(mqtt_broker, f"mqferry-ovl-{uuid.uuid4().hex[:8]}", rules, p))
    try:
        # 3 messages reach 4 rules each, 1 (two levels deep) reaches "wide" and "both"
        with mosquitto_sub(f"{p}/out/#", 14) as sub:
            for i in range(3):
                mosquitto_pub(f"{p}/in/a", json.dumps({"i": i}))
            mosquitto_pub(f"{p}/in/a/deep", json.dumps({"i": 9}))
            sub.wait(30)
            time.sleep(1.0)  # what a second copy would bring
            got = by_rule(sub.messages)
    finally:
        assert app.terminate() == 0
    three = [json.dumps({"i": i}) for i in range(3)]
    assert got == {"wide": sorted([*three, '{"i": 9}']), "one": three, "exact": three,
                   "both": sorted([*three, '{"i": 9}'])}, app.log


def test_a_filter_dropped_while_mqferry_was_down_is_unsubscribed_when_it_comes_back(
        tmp_path, mqtt_broker, mosquitto_pub, mosquitto_sub):
    p = f"ovl-{uuid.uuid4().hex[:6]}"
    clientid = f"mqferry-ovl-{uuid.uuid4().hex[:8]}"
    # first run: two filters; the persistent session keeps both when mqferry stops
    app = run(tmp_path, config(mqtt_broker, clientid, {"r": [f"{p}/in/+", f"{p}/in/#"]}, p))
    assert app.terminate() == 0
    # second run: one filter; the broker still holds the session's "+" subscription
    app = run(tmp_path, config(mqtt_broker, clientid, {"r": [f"{p}/in/#"]}, p))
    try:
        with mosquitto_sub(f"{p}/out/#", 3) as sub:
            for i in range(3):
                mosquitto_pub(f"{p}/in/x", json.dumps({"i": i}))
            sub.wait(30)
            time.sleep(1.0)
            got = by_rule(sub.messages)
    finally:
        assert app.terminate() == 0
    assert got == {"r": [json.dumps({"i": i}) for i in range(3)]}, app.log
    assert f"unsubscribed from {p}/in/+" in app.log, app.log
    state = json.loads(next((tmp_path / "data" / "mqtt").glob("*.subscriptions.json"))
                       .read_text())
    assert list(state["subscribed"]) == [f"{p}/in/#"]


def send(mosquitto_pub, topic: str, n: int) -> list[str]:
    bodies = [json.dumps({"i": i}) for i in range(n)]
    for body in bodies:
        mosquitto_pub(topic, body)  # QoS 1: the broker queues it for the persistent session
    return bodies


def test_a_rule_removed_while_mqferry_was_down_does_not_make_another_run_twice(
        tmp_path, mqtt_broker, mosquitto_pub, mosquitto_sub):
    p = f"ovl-{uuid.uuid4().hex[:6]}"
    clientid = f"mqferry-ovl-{uuid.uuid4().hex[:8]}"
    app = run(tmp_path, config(mqtt_broker, clientid,
                               {"all": [f"{p}/in/#"], "s": [f"{p}/in/s/+"]}, p))
    assert app.terminate() == 0
    # down: the broker queues a copy for each subscription, p/in/# and p/in/s/+
    bodies = send(mosquitto_pub, f"{p}/in/s/1", 3)
    with mosquitto_sub(f"{p}/out/#", 4) as sub:  # one more: a message run twice
        app = run(tmp_path, config(mqtt_broker, clientid, {"all": [f"{p}/in/#"]}, p))
        try:
            got = by_rule(sub.wait(8))
        finally:
            assert app.terminate() == 0
    assert got == {"all": sorted(bodies)}, app.log
    assert f"unsubscribed from {p}/in/s/+" in app.log, app.log


def test_a_rule_whose_filter_changed_while_mqferry_was_down_gets_what_was_queued(
        tmp_path, mqtt_broker, mosquitto_pub, mosquitto_sub):
    p = f"ovl-{uuid.uuid4().hex[:6]}"
    clientid = f"mqferry-ovl-{uuid.uuid4().hex[:8]}"
    app = run(tmp_path, config(mqtt_broker, clientid, {"r": [f"{p}/in/+"]}, p))
    assert app.terminate() == 0
    # down: queued only under p/in/+, which no rule wants once r is on p/in/#
    bodies = send(mosquitto_pub, f"{p}/in/1", 3)
    with mosquitto_sub(f"{p}/out/#", 4) as sub:  # one more: a message run twice
        app = run(tmp_path, config(mqtt_broker, clientid, {"r": [f"{p}/in/#"]}, p))
        try:
            got = by_rule(sub.wait(8))
        finally:
            assert app.terminate() == 0
    assert got == {"r": sorted(bodies)}, app.log


def test_a_rule_given_an_earlier_sorting_filter_while_down_gets_what_was_queued(
        tmp_path, mqtt_broker, mosquitto_pub, mosquitto_sub):
    # r on p/in/a; while down it gains p/in/# (sorted first). What the broker queued went under
    # p/in/a only: r takes the copies of its oldest subscription, not of its first filter.
    p = f"ovl-{uuid.uuid4().hex[:6]}"
    clientid = f"mqferry-ovl-{uuid.uuid4().hex[:8]}"
    app = run(tmp_path, config(mqtt_broker, clientid, {"r": [f"{p}/in/a"]}, p))
    assert app.terminate() == 0
    bodies = send(mosquitto_pub, f"{p}/in/a", 3)
    with mosquitto_sub(f"{p}/out/#", 7) as sub:  # one more: a message run twice
        app = run(tmp_path, config(mqtt_broker, clientid, {"r": [f"{p}/in/#", f"{p}/in/a"]}, p))
        try:
            later = [f"later-{i}" for i in range(3)]  # a copy per filter now: taken once
            for body in later:
                mosquitto_pub(f"{p}/in/a", body)
            got = by_rule(sub.wait(8))
        finally:
            assert app.terminate() == 0
    assert got == {"r": sorted(bodies + later)}, app.log


def test_a_state_file_holding_a_filter_the_broker_refuses_does_not_keep_the_session_down(
        tmp_path, mqtt_broker, mosquitto_pub, mosquitto_sub):
    p = f"ovl-{uuid.uuid4().hex[:6]}"
    clientid = f"mqferry-ovl-{uuid.uuid4().hex[:8]}"
    cfg = config(mqtt_broker, clientid, {"r": [f"{p}/in/#"]}, p)
    app = run(tmp_path, cfg)
    assert app.terminate() == 0
    # as an earlier version left it: a filter of 202 levels, on whose UNSUBSCRIBE Mosquitto
    # ends the connection ("Malformed packet"), at every reconnect
    path = next((tmp_path / "data" / "mqtt").glob("*.subscriptions.json"))
    state = json.loads(path.read_text())
    deep = "/".join([p, *["l"] * 201])
    state["subscribed"][deep] = state["next"]
    state["next"] += 1
    path.write_text(json.dumps(state))
    app = run(tmp_path, cfg)
    try:
        with mosquitto_sub(f"{p}/out/#", 3) as sub:
            bodies = send(mosquitto_pub, f"{p}/in/1", 3)
            sub.wait(30)
            got = by_rule(sub.messages)
    finally:
        assert app.terminate() == 0
    assert got == {"r": sorted(bodies)}, app.log
    assert f"{path.name}: dropped the entry" in app.log and "202 levels" in app.log, app.log
    assert "Malformed" not in app.log and "disconnect" not in app.log.lower(), app.log
    assert deep not in json.loads(path.read_text())["subscribed"]

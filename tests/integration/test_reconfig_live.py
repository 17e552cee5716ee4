"""Live reconfiguration through the REST API of a real ``mqferry run``, while messages flow.

mosquitto_pub publishes a steady stream to two rules; during the stream the API changes one rule's
SQL and the other rule's Kafka action (a new topic). kcat then counts: every message arrived in
Kafka, in the old or the new shape, none lost; the MQTT session was never re-established; the
change was written back to the config file, and a restarted instance serves it.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
import uuid

import httpx
import pytest
import yaml

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port

pytestmark = pytest.mark.integration

COUNT = 600  # per rule
RATE = 150.0  # messages per second per rule


def _stream(broker, topics: list[str], count: int, rate: float) -> threading.Thread:
    """Publish ``count`` numbered messages to each topic with ``mosquitto_pub -l`` (QoS 1)."""
    exe = shutil.which("mosquitto_pub")
    if exe is None:
        pytest.skip("mosquitto_pub is not installed")
    procs = [subprocess.Popen([exe, "-h", broker.host, "-p", str(broker.port), "-V", "5",
                               "-q", "1", "-t", t, "-l"], stdin=subprocess.PIPE, text=True)
             for t in topics]

    def feed() -> None:
        start = time.monotonic()
        for i in range(count):
            for p in procs:
                assert p.stdin is not None
                p.stdin.write(json.dumps({"n": i}) + "\n")
                p.stdin.flush()
            delay = start + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for p in procs:
            assert p.stdin is not None
            p.stdin.close()
            p.wait(60)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def _numbers(records) -> list[int]:
    return [json.loads(r["payload"])["n"] for r in records]


@pytest.fixture
def instance(kafka_bootstrap, mqtt_broker, new_topic, tmp_path):
    p = f"rc-{uuid.uuid4().hex[:8]}"
    topics = {"a1": new_topic(), "a2": new_topic(), "b": new_topic()}
    port = free_port()
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": f"mqferry-{p}"},
        "api": {"listen": f"127.0.0.1:{port}"},
        "data_dir": str(tmp_path / "data"),
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {
            "sink_a": {"connector": "k", "parameters": {"topic": topics["a1"]}},
            "sink_b": {"connector": "k", "parameters": {"topic": topics["b"]}}}},
        "rules": {
            "rule_a": {"sql": f'SELECT payload.n AS n FROM "{p}/a"',
                       "actions": ["kafka_producer:sink_a"]},
            "rule_b": {"sql": f'SELECT payload.n AS n FROM "{p}/b"',
                       "actions": ["kafka_producer:sink_b"]}},
    }
    procs: list[MqferryProcess] = []

    def start(cfg):
        proc = MqferryProcess(cfg, tmp_path).start()
        procs.append(proc)
        return proc

    first = MqferryProcess(config, tmp_path)  # writes the config file
    key = api_key(first.config_path)
    procs.append(first.start())
    yield {"p": p, "topics": topics, "port": port, "auth": key, "proc": first,
           "start": start, "tmp": tmp_path}
    for proc in procs:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()


def test_change_a_rule_and_an_action_while_messages_flow(instance, mqtt_broker, kcat_consume):
    proc = instance["proc"]
    proc.wait_ready(actions=2)
    proc.wait_for_log("API listening")
    with httpx.Client(base_url=f"http://127.0.0.1:{instance['port']}/api/v5",
                      auth=instance["auth"], timeout=60) as api:
        _change_while_flowing(api, instance, mqtt_broker, kcat_consume)


def _change_while_flowing(api, instance, mqtt_broker, kcat_consume):
    p, topics, proc = instance["p"], instance["topics"], instance["proc"]
    feeder = _stream(mqtt_broker, [f"{p}/a", f"{p}/b"], COUNT, RATE)
    time.sleep(COUNT / RATE / 3)
    r = api.put("/actions/kafka_producer:sink_a",
                json={"connector": "k", "parameters": {"topic": topics["a2"]}})
    assert r.status_code == 200, r.text
    sql = f'SELECT payload.n AS n, 2 AS v FROM "{p}/b"'
    r = api.put("/rules/rule_b", json={"sql": sql})
    assert r.status_code == 200, r.text
    feeder.join(COUNT / RATE + 60)
    assert not feeder.is_alive()

    a_old = kcat_consume(topics["a1"], 1, timeout=10)
    a_new = kcat_consume(topics["a2"], COUNT - len(a_old), timeout=60)
    b = kcat_consume(topics["b"], COUNT, timeout=60)
    a_numbers = _numbers(a_old) + _numbers(a_new)
    assert sorted(set(a_numbers)) == list(range(COUNT)), "rule_a lost messages"
    assert sorted(set(_numbers(b))) == list(range(COUNT)), "rule_b lost messages"
    # Both shapes were produced: the change happened mid-stream, not before or after it.
    assert a_old and a_new
    shapes = {"v" in json.loads(r["payload"]) for r in b}
    assert shapes == {True, False}
    # Same MQTT session throughout; rule_b's action and the connector were never restarted.
    assert sum("connected to MQTT broker" in line for line in proc.lines) == 1
    assert sum("starting action kafka_producer:sink_b" in line for line in proc.lines) == 1
    assert sum("starting connector kafka_producer:k" in line for line in proc.lines) == 1
    duplicates = len(a_numbers) - COUNT + len(b) - COUNT
    print(f"a: {len(a_old)} old topic + {len(a_new)} new topic; duplicates: {duplicates}")

    metrics = api.get("/metrics").text
    # the default node name: the file sets none
    assert (f'mqferry_rule_matched_total{{id="rule_b",node="mqferry@localhost"}} {float(COUNT)}'
            in metrics)

    on_disk = proc.saved(lambda d: "2 AS v" in d["rules"]["rule_b"]["sql"])
    assert on_disk["actions"]["kafka_producer"]["sink_a"]["parameters"]["topic"] == topics["a2"]
    assert "2 AS v" in on_disk["rules"]["rule_b"]["sql"]
    assert proc.terminate() == 0


def test_api_changes_survive_a_restart(instance, mqtt_broker, kcat_consume, new_topic):
    p, proc = instance["p"], instance["proc"]
    proc.wait_ready(actions=2)
    proc.wait_for_log("API listening")
    base = f"http://127.0.0.1:{instance['port']}/api/v5"
    extra = new_topic()
    with httpx.Client(base_url=base, auth=instance["auth"], timeout=60) as api:
        r = api.post("/actions", json={"type": "kafka_producer", "name": "sink_c",
                                       "connector": "k", "parameters": {"topic": extra}})
        assert r.status_code == 201, r.text
        sql = f'SELECT payload.n AS n FROM "{p}/c"'
        r = api.post("/rules", json={"id": "rule_c", "sql": sql,
                                     "actions": ["kafka_producer:sink_c"]})
        assert r.status_code == 201, r.text
        assert api.delete("/rules/rule_a").status_code == 204
    assert proc.terminate() == 0

    persisted = yaml.safe_load(proc.config_path.read_text())
    again = instance["start"](persisted)
    again.wait_ready(actions=3)
    again.wait_for_log("API listening")
    with httpx.Client(base_url=base, auth=instance["auth"], timeout=60) as api:
        rules = {r["id"] for r in api.get("/rules").json()["data"]}
        assert rules == {"rule_b", "rule_c"}
    subprocess.run([shutil.which("mosquitto_pub") or "mosquitto_pub", "-h", mqtt_broker.host,
                    "-p", str(mqtt_broker.port), "-V", "5", "-q", "1", "-t", f"{p}/c",
                    "-m", '{"n": 7}'], check=True, timeout=30)
    [record] = kcat_consume(extra, 1, timeout=60)
    assert json.loads(record["payload"]) == {"n": 7}
    assert again.terminate() == 0


def test_file_edit_and_sighup(instance, mqtt_broker, kcat_consume, new_topic):
    p, proc = instance["p"], instance["proc"]
    proc.wait_ready(actions=2)
    data = yaml.safe_load(proc.config_path.read_text())
    data["rules"]["rule_a"]["sql"] = "SELECT"  # invalid first: nothing may change
    proc.config_path.write_text(yaml.safe_dump(data))
    proc.proc.send_signal(signal.SIGHUP)
    proc.wait_for_log("the config file is invalid; nothing was changed")
    extra = new_topic()
    data["rules"]["rule_a"]["sql"] = f'SELECT payload.n AS n FROM "{p}/a"'
    data["actions"]["kafka_producer"]["sink_d"] = {"connector": "k",
                                                   "parameters": {"topic": extra}}
    data["rules"]["rule_d"] = {"sql": f'SELECT payload.n AS n FROM "{p}/d"',
                               "actions": ["kafka_producer:sink_d"]}
    proc.config_path.write_text(yaml.safe_dump(data))
    proc.proc.send_signal(signal.SIGHUP)
    proc.wait_for_log("configuration applied")
    proc.wait_for_log("subscribed to", count=2)
    subprocess.run([shutil.which("mosquitto_pub") or "mosquitto_pub", "-h", mqtt_broker.host,
                    "-p", str(mqtt_broker.port), "-V", "5", "-q", "1", "-t", f"{p}/d",
                    "-m", '{"n": 3}'], check=True, timeout=30)
    [record] = kcat_consume(extra, 1, timeout=60)
    assert json.loads(record["payload"]) == {"n": 3}
    assert sum("connected to MQTT broker" in line for line in proc.lines) == 1
    assert proc.terminate() == 0

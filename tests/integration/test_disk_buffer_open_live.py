"""A Kafka sink's disk buffer against real Kafka and Mosquitto: what it kept is sent by a sink
changed to a memory buffer, and a buffer directory that cannot be used fails that sink alone.

kcat is the witness: every message arrives, exactly once where nothing forced a redelivery.
"""

from __future__ import annotations

import collections
import json
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port
from tests.integration.publisher import publish_many
from tests.integration.witnesses import wait_until

pytestmark = pytest.mark.integration

COUNT = 300


def _api(port: int, config_path: Path) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v5",
                        auth=api_key(config_path), timeout=90)


def _metrics(api: httpx.Client, cid: str) -> dict:
    body = api.get(f"/actions/{cid}/metrics").json()
    return dict(body.get("metrics", body))


def _status(api: httpx.Client, cid: str) -> dict:
    return next(a for a in api.get("/status").json()["actions"] if a["id"] == cid)


def test_a_sink_changed_to_a_memory_buffer_sends_what_its_disk_buffer_kept(
        kafka_bootstrap, mqtt_broker, new_topic, tmp_path, kcat_consume):
    p = f"dm-{uuid.uuid4().hex[:8]}"
    topic = new_topic()
    port = free_port()
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": f"mqferry-{p}"},
        "api": {"listen": f"127.0.0.1:{port}"},
        "data_dir": str(tmp_path / "data"),
        "connectors": {"kafka_producer": {
            "down": {"bootstrap_hosts": f"127.0.0.1:{free_port()}"},
            "up": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {"sink": {"connector": "down", "parameters": {
            "topic": topic, "buffer": {"mode": "disk"}}}}},
        "rules": {"r": {"sql": f'SELECT payload.n AS n FROM "{p}/in"',
                        "actions": ["kafka_producer:sink"]}},
    }
    proc = MqferryProcess(config, tmp_path)
    proc.start()
    try:
        proc.wait_for_log("API listening")
        with _api(port, proc.config_path) as api:
            publish_many(mqtt_broker.host, mqtt_broker.port,
                         [(f"{p}/in", json.dumps({"n": i}).encode()) for i in range(COUNT)])
            assert wait_until(lambda: _metrics(api, "kafka_producer:sink").get("queuing")
                              == COUNT, 30)
            r = api.put("/actions/kafka_producer:sink", json={
                "connector": "up", "parameters": {"topic": topic, "buffer": {"mode": "memory"}}})
            assert r.status_code == 200, r.text
            publish_many(mqtt_broker.host, mqtt_broker.port,
                         [(f"{p}/in", json.dumps({"n": i}).encode())
                          for i in range(COUNT, 2 * COUNT)])
            assert wait_until(lambda: _metrics(api, "kafka_producer:sink").get("success")
                              == 2 * COUNT, 60), _metrics(api, "kafka_producer:sink")
        records = kcat_consume(topic, 2 * COUNT, timeout=30)
        seen = collections.Counter(json.loads(r["payload"])["n"] for r in records)
        assert sorted(seen) == list(range(2 * COUNT))
        assert [n for n, c in seen.items() if c > 1] == []
        assert f"replaying {COUNT} records from the disk buffer" in proc.log
        assert proc.terminate() == 0
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()


def test_an_unusable_buffer_directory_fails_that_sink_alone_until_it_is_usable(
        kafka_bootstrap, mqtt_broker, new_topic, tmp_path, kcat_consume):
    p = f"du-{uuid.uuid4().hex[:8]}"
    disk_topic, memory_topic = new_topic(), new_topic()
    port = free_port()
    data = tmp_path / "data"
    directory = data / "kafka_producer" / "sink"
    directory.parent.mkdir(parents=True)
    directory.write_text("in the way")
    up = {"bootstrap_hosts": kafka_bootstrap}
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": f"mqferry-{p}"},
        "api": {"listen": f"127.0.0.1:{port}"},
        "data_dir": str(data),
        "connectors": {"kafka_producer": {"up": up}},
        "actions": {"kafka_producer": {
            "sink": {"connector": "up", "parameters": {"topic": disk_topic,
                                                       "buffer": {"mode": "disk"}}},
            "other": {"connector": "up", "parameters": {"topic": memory_topic}}}},
        "rules": {
            "r1": {"sql": f'SELECT payload.n AS n FROM "{p}/disk"',
                   "actions": ["kafka_producer:sink"]},
            "r2": {"sql": f'SELECT payload.n AS n FROM "{p}/mem"',
                   "actions": ["kafka_producer:other"]}},
    }
    proc = MqferryProcess(config, tmp_path)
    proc.start()
    try:
        proc.wait_for_log("API listening")
        with _api(port, proc.config_path) as api:
            status = _status(api, "kafka_producer:sink")
            assert status["status"] == "disconnected", status
            assert f"disk buffer {directory}: cannot be used" in status["status_reason"]
            publish_many(mqtt_broker.host, mqtt_broker.port,
                         [(f"{p}/mem", json.dumps({"n": i}).encode()) for i in range(COUNT)])
            records = kcat_consume(memory_topic, COUNT, timeout=30)  # the rest runs
            assert sorted(json.loads(r["payload"])["n"] for r in records) == list(range(COUNT))
            assert _metrics(api, "kafka_producer:sink").get("disk_open_errors", 0) >= 1
            # the sink's records wait in memory, unsecured, until the disk takes them
            publish_many(mqtt_broker.host, mqtt_broker.port,
                         [(f"{p}/disk", json.dumps({"n": i}).encode()) for i in range(COUNT)])
            assert wait_until(lambda: _metrics(api, "kafka_producer:sink").get("queuing")
                              == COUNT, 30), _metrics(api, "kafka_producer:sink")
            assert _metrics(api, "kafka_producer:sink").get("success", 0) == 0
            directory.unlink()  # the operator clears the way
            assert wait_until(lambda: _status(api, "kafka_producer:sink")["status"]
                              == "connected", 30), _status(api, "kafka_producer:sink")
            assert wait_until(lambda: _metrics(api, "kafka_producer:sink").get("success")
                              == COUNT, 60), _metrics(api, "kafka_producer:sink")
        records = kcat_consume(disk_topic, COUNT, timeout=30)
        assert sorted(json.loads(r["payload"])["n"] for r in records) == list(range(COUNT))
        assert proc.log.count("cannot be used") <= 3  # at most once per 10 s
        assert proc.terminate() == 0
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()

"""A Kafka sink with a disk buffer, replaced through the REST API: real Kafka and Mosquitto.

The sink starts on a connector whose Kafka nobody answers, so every record it takes is kept in
its disk buffer (the MQTT messages are acknowledged once on disk). The API moves it to the real
cluster: the new sink opens the buffer once the old one closed it and sends what it kept; then,
under a steady stream, another change hands the buffer over again. kcat finds every message
exactly once; nothing is reported lost, nothing counted as dropped. A second ``mqferry run`` on
the same ``data_dir`` is refused with a message naming the buffer's directory.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid

import httpx
import pytest

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port
from tests.integration.publisher import publish_many
from tests.integration.witnesses import wait_until

pytestmark = pytest.mark.integration

COUNT = 300



def test_a_disk_buffer_is_handed_over_on_replacement_and_every_record_sent_once(
        kafka_bootstrap, mqtt_broker, new_topic, tmp_path, kcat_consume):
    p = f"dh-{uuid.uuid4().hex[:8]}"
    topic, topic2 = new_topic(), new_topic()
    port = free_port()
    disk = {"mode": "disk"}
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": f"mqferry-{p}"},
        "api": {"listen": f"127.0.0.1:{port}"},
        "data_dir": str(tmp_path / "data"),
        "connectors": {"kafka_producer": {
            "down": {"bootstrap_hosts": f"127.0.0.1:{free_port()}"},
            "up": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {
            "sink": {"connector": "down", "parameters": {"topic": topic, "buffer": disk}}}},
        "rules": {"r": {"sql": f'SELECT payload.n AS n FROM "{p}/in"',
                        "actions": ["kafka_producer:sink"]}},
    }
    proc = MqferryProcess(config, tmp_path)
    auth = api_key(proc.config_path)
    proc.start()
    try:
        proc.wait_for_log("connected to MQTT broker")
        proc.wait_for_log("API listening")
        (tmp_path / "second").mkdir()
        second = MqferryProcess({**config, "api": {"enable": False},
                                 "mqtt": {**config["mqtt"], "clientid": f"mqferry-{p}-2"}},
                                tmp_path / "second")
        second.start()
        assert second.wait_exit(60) == 1
        directory = tmp_path / "data" / "kafka_producer" / "sink"
        assert f"disk buffer {directory}: is in use by process {proc.proc.pid}" in second.log
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v5", auth=auth,
                          timeout=90) as api:
            def metrics() -> dict:
                body = api.get("/actions/kafka_producer:sink/metrics").json()
                return dict(body.get("metrics", body))

            publish_many(mqtt_broker.host, mqtt_broker.port,
                         [(f"{p}/in", json.dumps({"n": i}).encode()) for i in range(COUNT)])
            assert wait_until(lambda: metrics().get("queuing") == COUNT, 30), metrics()

            r = api.put("/actions/kafka_producer:sink", json={
                "connector": "up", "parameters": {"topic": topic, "buffer": disk}})
            assert r.status_code == 200, r.text
            assert wait_until(lambda: metrics().get("success") == COUNT, 60), metrics()

            # A change under a steady stream: the buffer is handed over while records flow.
            stream = threading.Thread(target=publish_many, args=(
                mqtt_broker.host, mqtt_broker.port,
                [(f"{p}/in", json.dumps({"n": i}).encode()) for i in range(COUNT, 4 * COUNT)]))
            stream.start()
            time.sleep(0.3)
            r = api.put("/actions/kafka_producer:sink", json={
                "connector": "up", "parameters": {"topic": topic2, "buffer": disk}})
            assert r.status_code == 200, r.text
            stream.join(60)
            assert wait_until(lambda: metrics().get("success") == 4 * COUNT, 60), metrics()
            m = metrics()
            assert (m["matched"], m.get("dropped", 0), m.get("queuing"), m.get("inflight")) == (
                4 * COUNT, 0, 0, 0), m

        records = kcat_consume(topic, 1, timeout=30) + kcat_consume(topic2, 1, timeout=30)
        seen = collections.Counter(json.loads(r["payload"])["n"] for r in records)
        assert sorted(seen) == list(range(4 * COUNT))
        assert [n for n, c in seen.items() if c > 1] == []  # none sent twice
        assert "unacknowledged records lost" not in proc.log
        assert "dropped.replaced" not in proc.log
        assert (f"the {COUNT} records it kept in its disk buffer are sent by its replacement"
                in proc.log)
        assert proc.terminate() == 0
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()

"""A Kafka sink replaced while it holds unsent records: real Kafka and Mosquitto, `mqferry run`.

The sink starts on a connector whose Kafka nobody answers, so every record it takes stays
queued; the REST API then moves it to the real cluster. The records the replaced sink left are
counted (``dropped.replaced``) and logged, their MQTT messages were never acknowledged, so
Mosquitto delivers them again, to the new sink: kcat finds every message in Kafka, and the
action's counters add up (``matched = success + failed + dropped + queuing + inflight``).
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port
from tests.integration.publisher import publish_many
from tests.integration.witnesses import wait_until

pytestmark = pytest.mark.integration

COUNT = 300



def test_what_a_replaced_sink_left_is_counted_and_delivered_again(
        kafka_bootstrap, mqtt_broker, new_topic, tmp_path, kcat_consume):
    p = f"ru-{uuid.uuid4().hex[:8]}"
    topic = new_topic()
    port = free_port()
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": f"mqferry-{p}"},
        "api": {"listen": f"127.0.0.1:{port}"},
        "data_dir": str(tmp_path / "data"),
        "connectors": {"kafka_producer": {
            # nothing listens there: the sink's records stay queued, their acks held
            "down": {"bootstrap_hosts": f"127.0.0.1:{free_port()}"},
            "up": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {
            "sink": {"connector": "down", "parameters": {"topic": topic}}}},
        "rules": {"r": {"sql": f'SELECT payload.n AS n FROM "{p}/in"',
                        "actions": ["kafka_producer:sink"]}},
    }
    proc = MqferryProcess(config, tmp_path)
    auth = api_key(proc.config_path)
    proc.start()
    try:
        proc.wait_for_log("connected to MQTT broker")
        proc.wait_for_log("API listening")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v5", auth=auth,
                          timeout=60) as api:
            def metrics() -> dict:
                body = api.get("/actions/kafka_producer:sink/metrics").json()
                return dict(body.get("metrics", body))

            publish_many(mqtt_broker.host, mqtt_broker.port,
                         [(f"{p}/in", json.dumps({"n": i}).encode()) for i in range(COUNT)])
            assert wait_until(lambda: metrics().get("queuing") == COUNT, 30), metrics()

            r = api.put("/actions/kafka_producer:sink",
                        json={"connector": "up", "parameters": {"topic": topic}})
            assert r.status_code == 200, r.text

            records = kcat_consume(topic, COUNT, timeout=60)
            assert sorted(json.loads(r["payload"])["n"] for r in records) == list(range(COUNT))
            assert wait_until(lambda: metrics().get("success") == COUNT, 30), metrics()
            m = metrics()
            ended = sum(m.get(k, 0) for k in ("success", "failed", "dropped", "queuing",
                                              "inflight"))
            # matched twice each (taken by the replaced sink, then by the new one)
            assert (m["matched"], ended) == (2 * COUNT, 2 * COUNT), m
            assert (m["dropped"], m["dropped.replaced"]) == (COUNT, COUNT), m
        assert (f"action kafka_producer:sink: {COUNT} records it had not sent are counted as "
                "dropped.replaced") in proc.log
        assert proc.terminate() == 0
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()

"""Scraping ``/api/v5/metrics`` of a running ``mqferry`` on the real Kafka and Mosquitto.

A rule sends MQTT messages (mosquitto_pub) to a kafka_producer action; a kafka_consumer source
reads a two-partition topic (kcat). The exposition is parsed with prometheus_client's parser:
each family follows Prometheus' naming and typing rules, the topic and partitions are labels,
and the counters agree with what the witnesses saw.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port
from tests.metrics.conventions import check_conventions, value

pytestmark = pytest.mark.integration


def test_a_scrape_follows_prometheus_conventions(kafka_bootstrap, mqtt_broker, new_topic,
                                                 kcat_produce, kcat_consume, mosquitto_pub,
                                                 tmp_path):
    tag = uuid.uuid4().hex[:8]
    inbound, outbound = new_topic(partitions=2), new_topic()
    port = free_port()
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}",
                 "clientid": f"mqferry-prom-{tag}"},
        "api": {"listen": f"127.0.0.1:{port}"},
        "data_dir": str(tmp_path / "data"),
        "connectors": {"kafka_producer": {"kp": {"bootstrap_hosts": kafka_bootstrap}},
                       "kafka_consumer": {"kc": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {"sink": {"connector": "kp", "parameters": {
            "topic": outbound, "message": {"key": "", "value": "${payload}"}}}}},
        "sources": {"kafka_consumer": {"src": {"connector": "kc", "parameters": {
            "group_id": f"mqferry-prom-{tag}",
            "topic_mapping": [{"kafka_topic": inbound, "mqtt_topic": f"prom-back-{tag}/x",
                               "qos": 1, "payload_template": "${.value}"}]}}}},
        "rules": {"to_kafka": {"sql": f'SELECT payload FROM "prom-{tag}/#"',
                               "actions": ["kafka_producer:sink"]}},
    }
    proc = MqferryProcess(config, tmp_path)
    auth = api_key(proc.config_path)
    proc.start()
    try:
        proc.wait_ready(actions=1, sources=1)
        proc.wait_for_log("API listening")
        for n in range(5):
            mosquitto_pub(f"prom-{tag}/in", f"m{n}")
        assert len(kcat_consume(outbound, 5)) == 5
        kcat_produce(inbound, ["a", "b", "c"], key="k", partition=1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v5", auth=auth,
                          timeout=30) as api:
            deadline = time.monotonic() + 30
            while True:
                r = api.get("/metrics")
                assert r.status_code == 200, r.text
                fams = check_conventions(r.text, forbidden=(inbound, outbound, tag))
                source = {"id": "kafka_consumer:src", "type": "kafka_consumer"}
                if value(fams, "mqferry_source_success", **source) == 3 or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        sink = {"id": "kafka_producer:sink", "type": "kafka_producer"}
        assert value(fams, "mqferry_rule_matched", id="to_kafka") == 5
        assert value(fams, "mqferry_action_success", **sink) == 5
        assert value(fams, "mqferry_source_received", **source) == 3
        assert fams["mqferry_source_lag"].type == "gauge"
        lags = {s.labels["partition"]: s.value for s in fams["mqferry_source_lag"].samples
                if s.labels["topic"] == inbound}
        assert lags == {"0": 0.0, "1": 0.0}, proc.log
        assert fams["mqferry_action_oldest_unacked_age_seconds"].type == "gauge"
        assert value(fams, "mqferry_status", id="kafka_consumer:src", kind="source",
                     status="connected") == 1
        assert proc.terminate() == 0
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()

"""The Prometheus exposition of an app with rules, a kafka_producer action and a kafka_consumer
source, on in-memory twins: parsed with prometheus_client's parser, each family checked."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from mqferry._api import KeyStore, create_api
from mqferry._metrics import Metrics, action_metrics
from mqferry._metrics.prometheus import exposition
from mqferry._mqtt.client import mqtt_metrics
from mqferry._plugins import load_plugins
from mqferry._runtime.reconfig import Controller
from mqferry.testing import InMemoryMqtt, build_app
from mqferry_kafka.testing import KafkaTwin
from tests.metrics.conventions import check_conventions, value
from tests.plugins.kafka_consumer.conftest import build_source
from tests.plugins.kafka_producer.conftest import build_action

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana-dashboard.json"
TOPIC = "metrics-in"
CONFIG = {
    "rules": {"to_kafka": {"sql": 'SELECT payload.t AS t, payload.v AS v FROM "s/#"'},
              "hot": {"sql": 'SELECT * FROM "s/#" WHERE payload.v > 100'}},
}


class ConsumerTwin:
    """What the source asks of its aiokafka consumer when partitions are assigned."""

    def __init__(self, committed: int, end: int) -> None:
        self.offsets = {"committed": committed, "end": end}

    async def committed(self, tp: TopicPartition) -> int:
        return self.offsets["committed"]

    async def position(self, tp: TopicPartition) -> int:
        return self.offsets["committed"]

    async def commit(self, offsets: object) -> None:
        pass

    def highwater(self, tp: TopicPartition) -> int:
        return self.offsets["end"]

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 0)

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, self.offsets["end"])

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 3)}


def record(offset, key=b"k"):
    return ConsumerRecord(topic=TOPIC, partition=0, offset=offset, timestamp=1, timestamp_type=0,
                          key=key, value=b"v", checksum=None, serialized_key_size=1,
                          serialized_value_size=1, headers=[])


@pytest.fixture
async def running_app(tmp_path):
    plugins = load_plugins()
    harness = build_app(CONFIG, plugins=plugins, data_dir=tmp_path)
    await harness.start()
    app = harness.app
    kafka = KafkaTwin(topics={"good": 1})
    action = build_action(tmp_path, kafka, topic="${t}")
    await action.start()
    app.actions[action.id] = action
    harness.wire("to_kafka", action)
    src = build_source(InMemoryMqtt(), topic_mapping=[{
        "kafka_topic": TOPIC, "mqtt_topic": "out/${.key}", "qos": 1,
        "payload_template": "${.value}"}])
    app.sources[src.id] = src  # never started: its consumer is the twin drive() gives it
    yield harness, plugins
    await action.stop(timeout=1.0)
    del app.actions[action.id], app.sources[src.id]
    await harness.stop()


async def drive(harness):
    """Traffic that moves every kind of counter and gauge."""
    app = harness.app
    for topic, payload in [("s/1", b'{"t": "good", "v": 1}'), ("s/1", b'{"t": "good", "v": 500}'),
                           ("s/2", b'{"t": "bad topic", "v": 2}'), ("s/3", b"not json")]:
        harness.mqtt.deliver(topic, payload)
    src = app.sources["kafka_consumer:s"]
    src.consumer = ConsumerTwin(committed=10, end=17)
    await src.take_partitions([TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 3)])
    src.handler.handle_batches({TopicPartition(TOPIC, 0): [record(10), record(11, key=b"a/#")]})
    for _ in range(20):
        await asyncio.sleep(0.01)
    for m in app.all_metrics():
        m.tick()
    return src


async def test_the_served_exposition_follows_prometheus_conventions(running_app, tmp_path):
    harness, plugins = running_app
    app = harness.app
    await drive(harness)
    store = KeyStore(tmp_path / "keys.json")
    key, secret = store.create("t")
    api = create_api(Controller(app, plugins, data={}), store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://mqferry/api/v5",
                                 auth=(key.api_key, secret)) as client:
        text = (await client.get("/metrics")).text
    fams = check_conventions(text, forbidden=(TOPIC, "good"))
    rule = {"id": "to_kafka"}
    sink = {"id": "kafka_producer:a", "type": "kafka_producer"}
    source = {"id": "kafka_consumer:s", "type": "kafka_consumer"}
    assert fams["mqferry_rule_matched"].type == "counter"
    assert value(fams, "mqferry_rule_matched", **rule) == 4
    assert value(fams, "mqferry_rule_failed_by_reason", **rule, reason="exception") == 1
    assert value(fams, "mqferry_rule_filtered", id="hot") == 2
    assert value(fams, "mqferry_action_success", **sink) == 2
    assert value(fams, "mqferry_action_failed", **sink) == 1
    assert value(fams, "mqferry_action_failed_by_reason", **sink, reason="invalid_topic") == 1
    for gauge in ("queuing", "queuing_bytes", "inflight", "oldest_unacked_age_seconds", "rate"):
        assert fams[f"mqferry_action_{gauge}"].type == "gauge", gauge
    assert value(fams, "mqferry_source_received", **source) == 2
    assert value(fams, "mqferry_source_failed_by_reason", **source, reason="render") == 1
    for gauge in ("inflight", "paused", "lag", "rate_max"):
        assert fams[f"mqferry_source_{gauge}"].type == "gauge", gauge
    # the lag per partition: a label each, no name per partition; 0 settled to 12, 3 at 10
    assert value(fams, "mqferry_source_lag", **source, topic=TOPIC, partition="0") == 5
    assert value(fams, "mqferry_source_lag", **source, topic=TOPIC, partition="3") == 7
    assert fams["mqferry_status"].type == "gauge"


async def test_the_json_metrics_keep_their_emqx_names_and_the_lag_total(running_app):
    harness, _ = running_app
    src = await drive(harness)
    snap = src.metrics.snapshot()
    assert (snap["lag"], snap[f"lag.{TOPIC}:0"], snap[f"lag.{TOPIC}:3"]) == (12, 5, 7)
    assert snap["failed.render"] == 1 and snap["paused"] == 0
    src.metrics.drop_gauge("lag", {"topic": TOPIC, "partition": "3"})
    assert f"lag.{TOPIC}:3" not in src.metrics.snapshot()
    assert src.metrics.snapshot()["lag"] == 5


def test_milliseconds_are_exposed_in_seconds():
    m = action_metrics("kafka_producer:k")
    m.gauge("oldest_unacked_age_ms", lambda: 2500.0)
    fams = check_conventions(exposition([("action", m.component_id, m)]).decode())
    assert value(fams, "mqferry_action_oldest_unacked_age_seconds") == 2.5
    assert m.snapshot()["oldest_unacked_age_ms"] == 2500.0  # the JSON API keeps EMQX's name


def test_a_gauge_hides_no_counter_and_takes_its_declared_labels():
    m = Metrics("source:s", ("received",))
    with pytest.raises(ValueError, match="'received' is a counter"):
        m.gauge("received", lambda: 1.0)
    m.series("lag", ("topic", "partition"))
    with pytest.raises(ValueError, match=r"takes the labels \['topic', 'partition'\]"):
        m.gauge("lag", lambda: 1.0, {"partition": "0", "topic": "t"})
    with pytest.raises(ValueError, match="takes the labels"):
        m.gauge("lag", lambda: 1.0)
    assert m.snapshot()["lag"] == 0  # declared, no series yet


def test_the_conventions_check_catches_the_old_exposition():
    old = ("# TYPE mqferry_source_lag_total counter\n"
           'mqferry_source_lag_total{id="kafka_consumer:s"} 3.0\n')
    with pytest.raises(AssertionError, match="not a gauge"):
        check_conventions(old)
    baked = ("# TYPE mqferry_source_lag_metrics_in_0 gauge\n"
             'mqferry_source_lag_metrics_in_0{id="kafka_consumer:s"} 3.0\n')
    with pytest.raises(AssertionError, match="belongs in a label"):
        check_conventions(baked, forbidden=(TOPIC,))
    ms = ("# TYPE mqferry_action_oldest_unacked_age_ms gauge\n"
          'mqferry_action_oldest_unacked_age_ms{id="a"} 3.0\n')
    with pytest.raises(AssertionError, match="milliseconds"):
        check_conventions(ms)



async def test_every_metric_the_grafana_dashboard_queries_is_exposed(running_app, tmp_path):
    harness, _ = running_app
    app = harness.app
    await drive(harness)
    text = exposition([("rule", rid, r.metrics) for rid, r in app.rules.items()]
                      + [("action", aid, a.metrics) for aid, a in app.actions.items()]
                      + [("source", sid, s.metrics) for sid, s in app.sources.items()],
                      [("mqtt", "mqtt", "connected")]).decode()
    exposed = {s.name for fam in check_conventions(text).values() for s in fam.samples}
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    queried = {name for q in queries for name in re.findall(r"\bmqferry_[a-z0-9_]+", q)}
    assert len(queried) >= 20
    assert queried - exposed == set()


def test_the_mqtt_sessions_drops_are_counted_by_reason():
    m = mqtt_metrics()
    m.inc("dropped")
    m.inc("dropped.malformed")
    fams = check_conventions(exposition([("mqtt", "mqtt", m)], node="n1").decode())
    assert value(fams, "mqferry_mqtt_dropped") == 1
    assert 'mqferry_mqtt_dropped_by_reason_total{id="mqtt",node="n1",reason="malformed"} 1.0' in (
        exposition([("mqtt", "mqtt", m)], node="n1").decode())

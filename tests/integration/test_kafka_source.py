"""The ``kafka_consumer`` source end to end: real Kafka, real Mosquitto, ``mqferry run`` processes.

kcat produces; mosquitto_sub (or kcat, for the dead-letter topic) is the witness.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid

import pytest

from tests.integration.mqferry_process import MqferryProcess

pytestmark = pytest.mark.integration


def config(kafka, mqtt, *, params, rules=None, clientid=None):
    cfg = {
        "mqtt": {"server": f"{mqtt.host}:{mqtt.port}",
                 "clientid": clientid or f"mqferry-src-{uuid.uuid4().hex[:8]}"},
        "connectors": {"kafka_consumer": {"kc": {"bootstrap_hosts": kafka}}},
        "sources": {"kafka_consumer": {"src": {"connector": "kc", "parameters": {
            "group_id": f"mqferry-test-{uuid.uuid4().hex[:8]}", **params}}}},
    }
    if rules:
        cfg["rules"] = rules
    return cfg


@pytest.fixture
def mqferry(tmp_path):
    procs: list[MqferryProcess] = []

    def start(cfg):
        p = MqferryProcess(cfg, tmp_path).start()
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.kill()


def mapping(topic, mqtt_topic, **kw):
    return {"kafka_topic": topic, "mqtt_topic": mqtt_topic, "qos": 1, **kw}


def wait_until(predicate, timeout, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def by_partition(messages):
    """Payloads "p<partition>-<index>" grouped by partition, in arrival order."""
    out: dict[str, list[int]] = {}
    for m in messages:
        part, _, idx = m.text.partition("-")
        out.setdefault(part, []).append(int(idx))
    return out


def test_mappings_and_rule_events_together(mqferry, kafka_bootstrap, mqtt_broker, new_topic,
                                           kcat_produce, mosquitto_sub):
    """5.x mapping to t/<key> and the 6.x flow: rule on the source event + republish."""
    mapped, ruled = new_topic(), new_topic()
    prefix = f"src-{uuid.uuid4().hex[:6]}"
    params = {"topic": ruled, "topic_mapping": [mapping(mapped, f"{prefix}/m/${{.key}}")]}
    rules = {"r": {"sql": 'SELECT * FROM "$bridges/kafka_consumer:src"',
                   "actions": [{"function": "republish",
                                "args": {"topic": f"{prefix}/r/${{topic}}", "payload": "${.}",
                                         "qos": 1}}]}}
    app = mqferry(config(kafka_bootstrap, mqtt_broker, params=params, rules=rules))
    app.wait_ready(sources=1)
    with mosquitto_sub([f"{prefix}/m/#", f"{prefix}/r/#"], 3) as sub:
        kcat_produce(mapped, ['{"msg": "Hello EMQX"}'], key="dev1", headers={"h1": "v1"})
        kcat_produce(ruled, ["from-rules"], key="k2")
        got = sub.wait(30)
    assert len(got) == 3, app.log
    topics = sorted(m.topic for m in got)
    # A mapped topic's records also fire the rule hook (as EMQX); the rule topic only the rule.
    assert topics == sorted([f"{prefix}/m/dev1", f"{prefix}/r/{mapped}", f"{prefix}/r/{ruled}"])
    direct = next(m for m in got if m.topic == f"{prefix}/m/dev1")
    msg = json.loads(direct.payload)
    assert set(msg) == {"headers", "key", "offset", "topic", "ts", "ts_type", "value"}
    assert (msg["headers"], msg["key"], msg["offset"], msg["topic"], msg["ts_type"],
            msg["value"]) == ({"h1": "v1"}, "dev1", 0, mapped, "create", '{"msg": "Hello EMQX"}')
    event = json.loads(next(m for m in got if m.topic == f"{prefix}/r/{ruled}").payload)
    assert (event["value"], event["key"]) == ("from-rules", "k2")
    assert event["event"] == "$bridges/kafka_consumer:src"
    assert app.terminate() == 0


def test_base64_modes_headers_and_value_paths(mqferry, kafka_bootstrap, mqtt_broker, new_topic,
                                              kcat_produce, mosquitto_sub):
    topic, raw = new_topic(), new_topic()
    prefix = f"b64-{uuid.uuid4().hex[:6]}"
    params = {"topic_mapping": [
        mapping(topic, f"{prefix}/h/${{.headers.h1}}",
                payload_template="${.value.temp}|${.headers.h2}|${.nope}|${.key}"),
        mapping(raw, f"{prefix}/raw", payload_template="${.key} ${.value}")],
        "key_encoding_mode": "base64", "value_encoding_mode": "none"}
    app = mqferry(config(kafka_bootstrap, mqtt_broker, params=params))
    app.wait_ready(sources=1)
    with mosquitto_sub(f"{prefix}/#", 2) as sub:
        kcat_produce(topic, ['{"temp": 21.5}'], key="kk", headers=[("h1", "dev"), ("h2", "x")])
        kcat_produce(raw, ["plain"], key="\u00e9")
        got = {m.topic: m.payload for m in sub.wait(30)}
    assert got[f"{prefix}/h/dev"] == b"21.5|x||" + base64.b64encode(b"kk"), app.log
    assert got[f"{prefix}/raw"] == base64.b64encode("\u00e9".encode()) + b" plain"
    assert app.terminate() == 0


def test_value_base64_carries_binary(mqferry, kafka_bootstrap, mqtt_broker, new_topic,
                                     kcat_produce, mosquitto_sub):
    topic = new_topic()
    prefix = f"bin-{uuid.uuid4().hex[:6]}"
    params = {"topic_mapping": [mapping(topic, f"{prefix}/v", payload_template="${.value}")],
              "value_encoding_mode": "base64"}
    app = mqferry(config(kafka_bootstrap, mqtt_broker, params=params))
    app.wait_ready(sources=1)
    with mosquitto_sub(f"{prefix}/v", 1) as sub:
        kcat_produce(topic, [b"\xff\x00\x01"])
        [m] = sub.wait(30)
    assert base64.b64decode(m.payload) == b"\xff\x00\x01"
    assert app.terminate() == 0


@pytest.mark.parametrize(("policy", "expected"), [("earliest", ["old", "new"]),
                                                  ("latest", ["new"])])
def test_offset_reset_policy(policy, expected, mqferry, kafka_bootstrap, mqtt_broker, new_topic,
                             kcat_produce, mosquitto_sub):
    topic = new_topic()
    prefix = f"reset-{uuid.uuid4().hex[:6]}"
    kcat_produce(topic, ["old"])
    params = {"offset_reset_policy": policy,
              "topic_mapping": [mapping(topic, f"{prefix}/t", payload_template="${.value}")]}
    with mosquitto_sub(f"{prefix}/t", len(expected)) as sub:
        app = mqferry(config(kafka_bootstrap, mqtt_broker, params=params))
        app.wait_ready(sources=1)
        kcat_produce(topic, ["new"])
        got = [m.text for m in sub.wait(30)]
        time.sleep(1.0)  # anything extra would arrive now
        got = [m.text for m in sub.messages]
    assert got == expected, app.log
    assert app.terminate() == 0


def test_latest_means_latest_as_of_the_first_start(mqferry, kafka_bootstrap, mqtt_broker,
                                                   new_topic, kcat_produce, mosquitto_sub):
    """Records produced while mqferry is down arrive after a restart (EMQX loses them)."""
    topic = new_topic()
    prefix = f"latest-{uuid.uuid4().hex[:6]}"
    params = {"topic_mapping": [mapping(topic, f"{prefix}/t", payload_template="${.value}")]}
    cfg = config(kafka_bootstrap, mqtt_broker, params=params)
    first = mqferry(cfg)
    first.wait_ready(sources=1)
    assert first.terminate() == 0
    kcat_produce(topic, ["while-down"])
    with mosquitto_sub(f"{prefix}/t", 1) as sub:
        second = mqferry(cfg)
        got = [m.text for m in sub.wait(30)]
    assert got == ["while-down"], second.log
    assert second.terminate() == 0


def test_restart_with_10000_records_all_arrive_in_order_per_partition(
        mqferry, kafka_bootstrap, mqtt_broker, new_topic, kcat_produce, mosquitto_sub):
    topic = new_topic(partitions=4)
    prefix = f"restart-{uuid.uuid4().hex[:6]}"
    params = {"topic_mapping": [mapping(topic, f"{prefix}/t", payload_template="${.value}")]}
    cfg = config(kafka_bootstrap, mqtt_broker, params=params)
    first = mqferry(cfg)
    first.wait_ready(sources=1)
    assert first.terminate() == 0
    for p in range(4):
        kcat_produce(topic, [f"p{p}-{i}" for i in range(2500)], partition=p)
    with mosquitto_sub(f"{prefix}/t", 10_000, timeout=180) as sub:
        second = mqferry(cfg)
        got = sub.wait(120)
    assert len(got) == 10_000, second.log[-3000:]
    parts = by_partition(got)
    assert sorted(parts) == ["p0", "p1", "p2", "p3"]
    for seq in parts.values():
        assert seq == list(range(2500))
    assert second.terminate() == 0


def _produce_slowly(produce, topic, partitions, per_partition, chunk=500):
    for start in range(0, per_partition, chunk):
        for p in range(partitions):
            produce(topic, [f"p{p}-{i}" for i in range(start, min(start + chunk,
                                                                   per_partition))],
                    partition=p)
        time.sleep(0.05)


def assert_replay_only(parts, per_partition):
    """Each partition: 0..n-1 in order, except that a tail may be replayed once after a restart."""
    for name, seq in parts.items():
        restarts = [i for i in range(1, len(seq)) if seq[i] != seq[i - 1] + 1]
        assert set(seq) == set(range(per_partition)), f"{name}: missing records"
        for r in restarts:
            # Going back (a replay from the last committed offset), never skipping forward.
            assert seq[r] <= seq[r - 1], f"{name}: skipped from {seq[r - 1]} to {seq[r]}"


def test_kill_9_during_a_stream_loses_nothing(mqferry, kafka_bootstrap, mqtt_broker, new_topic,
                                              kcat_produce, mosquitto_sub):
    topic = new_topic(partitions=2)
    prefix = f"kill-{uuid.uuid4().hex[:6]}"
    per_partition = 5000
    window = 500
    params = {"offset_commit_interval_seconds": "1s", "max_inflight": window,
              "topic_mapping": [mapping(topic, f"{prefix}/t", payload_template="${.value}")]}
    cfg = config(kafka_bootstrap, mqtt_broker, params=params)
    with mosquitto_sub(f"{prefix}/t", 10 * per_partition, timeout=300) as sub:
        first = mqferry(cfg)
        first.wait_ready(sources=1)
        producer = threading.Thread(target=_produce_slowly,
                                    args=(kcat_produce, topic, 2, per_partition))
        producer.start()
        assert wait_until(lambda: len(sub.messages) >= 2000, 60), first.log
        first.kill()
        killed_at = len(sub.messages)
        producer.join()
        second = mqferry(cfg)
        expected = {f"p{p}-{i}" for p in range(2) for i in range(per_partition)}
        assert wait_until(lambda: expected <= {m.text for m in sub.messages}, 120), second.log
        time.sleep(1.0)
        got = sub.messages
    assert killed_at < 2 * per_partition  # the kill happened mid-stream
    assert_replay_only(by_partition(got), per_partition)
    # only what was handed out since the last commit comes again: the in-flight window
    duplicates = len(got) - len({m.text for m in got})
    assert duplicates <= window, duplicates
    assert second.terminate() == 0


def test_dead_letter_topic_gets_unrenderable_records_with_the_reason(
        mqferry, kafka_bootstrap, mqtt_broker, new_topic, kcat_produce, kcat_consume,
        mosquitto_sub):
    topic, dlq = new_topic(), new_topic()
    prefix = f"dlq-{uuid.uuid4().hex[:6]}"
    params = {"dead_letter_topic": dlq,
              "topic_mapping": [mapping(topic, f"{prefix}/${{.key}}",
                                        payload_template="${.value}")]}
    app = mqferry(config(kafka_bootstrap, mqtt_broker, params=params))
    app.wait_ready(sources=1)
    with mosquitto_sub(f"{prefix}/#", 1) as sub:
        kcat_produce(topic, ["bad"], key="a/#", headers={"h": "1"})
        kcat_produce(topic, ["good"], key="ok")
        [m] = sub.wait(30)
    assert (m.topic, m.text) == (f"{prefix}/ok", "good")
    [dead] = kcat_consume(dlq, 1)
    headers = dict(dead["headers"])
    assert (dead["payload"], dead["key"]) == ("bad", "a/#")
    assert "wildcard" in headers["mqferry-error"], headers
    assert (headers["h"], headers["mqferry-topic"], headers["mqferry-offset"]) == (
        "1", topic, "0")
    assert headers["mqferry-source"] == "kafka_consumer:src"
    assert app.terminate() == 0


def test_topic_pattern_consumes_matching_topics(mqferry, kafka_bootstrap, mqtt_broker,
                                                new_topic, kcat_produce, mosquitto_sub):
    tag = uuid.uuid4().hex[:6]
    a, b = new_topic(prefix=f"pat-{tag}-a"), new_topic(prefix=f"pat-{tag}-b")
    other = new_topic(prefix=f"other-{tag}")
    prefix = f"pat-{tag}"
    params = {"topic_pattern": f"pat-{tag}-.*"}
    rules = {"r": {"sql": 'SELECT value, topic FROM "$sources/kafka_consumer:src"',
                   "actions": [{"function": "republish",
                                "args": {"topic": f"{prefix}/out", "payload": "${value}",
                                         "qos": 1}}]}}
    app = mqferry(config(kafka_bootstrap, mqtt_broker, params=params, rules=rules))
    app.wait_ready(sources=1)
    with mosquitto_sub(f"{prefix}/out", 2) as sub:
        kcat_produce(other, ["not-me"])
        kcat_produce(a, ["from-a"])
        kcat_produce(b, ["from-b"])
        got = sorted(m.text for m in sub.wait(30))
        time.sleep(0.5)
        assert len(sub.messages) == 2
    assert got == ["from-a", "from-b"], app.log
    assert app.terminate() == 0

"""A Kafka record the source cannot process fails alone: real Kafka and Mosquitto, `mqferry run`.

The poison record is a JSON value nested 300 deep under a mapping whose payload template
``${value.data}`` makes the JSON encoder give up. kcat produces; mosquitto_sub witnesses the good
records, kcat the dead-letter topic; the group's committed offset is read from Kafka's group
coordinator; the REST API shows the status and takes a change to the source.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.integration.conftest import _run_in_thread
from tests.integration.mqferry_process import MqferryProcess, api_key, free_port
from tests.integration.witnesses import wait_until

pytestmark = pytest.mark.integration

POISON = json.dumps({"data": json.loads("[" * 300 + "]" * 300)})
GOOD = [json.dumps({"data": f"good-{i}"}) for i in range(5)]


def committed_offset(bootstrap: str, group: str, topic: str, partition: int = 0) -> int | None:
    """The group's committed offset of ``topic``/``partition``, as Kafka's group coordinator
    reports it."""
    async def read() -> int | None:
        from aiokafka import TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        meta = offsets.get(TopicPartition(topic, partition))
        return None if meta is None or meta.offset < 0 else meta.offset

    result: int | None = _run_in_thread(read)
    return result



def _running(kafka_bootstrap, mqtt_broker, new_topic, tmp_path, reads, **extra):
    """A running ``mqferry`` whose source ``src`` has a dead-letter topic, with its API.

    ``reads(topic, tag)`` gives the source's parameters that say what it does with ``topic``;
    ``extra`` adds sections to the configuration (actions, rules).
    """
    tag = uuid.uuid4().hex[:8]
    topic, dlq = new_topic(), new_topic()
    port = free_port()
    source = {"connector": "kc", "parameters": {
        "group_id": f"mqferry-poison-{tag}", "dead_letter_topic": dlq,
        "offset_commit_interval_seconds": 1, **reads(topic, tag)}}
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}",
                 "clientid": f"mqferry-poison-{tag}"},
        "api": {"listen": f"127.0.0.1:{port}"},
        "data_dir": str(tmp_path / "data"),
        "connectors": {"kafka_consumer": {"kc": {"bootstrap_hosts": kafka_bootstrap}}},
        "sources": {"kafka_consumer": {"src": source}},
        **{k: v(tag) for k, v in extra.items()},
    }
    proc = MqferryProcess(config, tmp_path)
    auth = api_key(proc.config_path)
    proc.start()
    try:
        proc.wait_ready(sources=1)
        proc.wait_for_log("API listening")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v5", auth=auth,
                          timeout=60) as api:
            yield {"proc": proc, "api": api, "topic": topic, "dlq": dlq, "tag": tag,
                   "source": source, "group": source["parameters"]["group_id"]}
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()


@pytest.fixture
def poisoned(kafka_bootstrap, mqtt_broker, new_topic, tmp_path):
    """A running ``mqferry`` whose source maps ``topic`` with ``${value.data}``, with its API."""
    def mapping(topic, tag):
        return {"topic_mapping": [{"kafka_topic": topic, "mqtt_topic": f"poison-{tag}/out",
                                   "qos": 1, "payload_template": "${value.data}"}]}

    yield from _running(kafka_bootstrap, mqtt_broker, new_topic, tmp_path, mapping)


@pytest.fixture
def republishing(kafka_bootstrap, mqtt_broker, new_topic, tmp_path):
    """A running ``mqferry`` whose source feeds rule ``r``, which republishes each record's
    value to ``poison-<tag>/<value>``."""
    yield from _running(
        kafka_bootstrap, mqtt_broker, new_topic, tmp_path, lambda topic, tag: {"topic": topic},
        actions=lambda tag: {"republish": {"out": {"parameters": {
            "topic": f"poison-{tag}/${{v}}", "payload": "${v}", "qos": 1}}}},
        rules=lambda tag: {"r": {"sql": 'SELECT value as v FROM "$bridges/kafka_consumer:src"',
                                 "actions": ["republish:out"]}})


@pytest.fixture
def evaluating(kafka_bootstrap, mqtt_broker, new_topic, tmp_path):
    """A running ``mqferry`` whose source feeds rule ``r``, which decodes each record's value as
    JSON and republishes those whose ``n`` is positive to ``poison-<tag>/<n>``."""
    yield from _running(
        kafka_bootstrap, mqtt_broker, new_topic, tmp_path, lambda topic, tag: {"topic": topic},
        actions=lambda tag: {"republish": {"out": {"parameters": {
            "topic": f"poison-{tag}/${{j.n}}", "payload": "${v}", "qos": 1}}}},
        rules=lambda tag: {"r": {
            "sql": 'SELECT json_decode(value) as j, value as v '
                   'FROM "$bridges/kafka_consumer:src" WHERE j.n > 0',
            "actions": ["republish:out"]}})


def source_status(api) -> dict:
    [src] = [s for s in api.get("/status").json()["sources"]
             if s["id"] == "kafka_consumer:src"]
    return src


def counters(api) -> dict:
    body = api.get("/sources/kafka_consumer:src/metrics").json()
    return dict(body.get("metrics", body))


def test_a_poison_record_is_dead_lettered_and_the_records_after_it_flow(
        poisoned, kafka_bootstrap, kcat_produce, kcat_consume, mosquitto_sub):
    p, api = poisoned, poisoned["api"]
    with mosquitto_sub(f"poison-{p['tag']}/#", len(GOOD)) as sub:
        kcat_produce(p["topic"], [POISON], key="poison", headers={"h": "1"})
        kcat_produce(p["topic"], GOOD, key="good")
        got = sub.wait(30)
    assert [m.text for m in got] == [f"good-{i}" for i in range(5)]
    [dead] = kcat_consume(p["dlq"], 1)
    headers = dict(dead["headers"])
    assert (dead["payload"], dead["key"], headers["h"]) == (POISON, "poison", "1")
    assert headers["mqferry-error"].startswith("payload_template: "), headers
    assert (headers["mqferry-topic"], headers["mqferry-offset"]) == (p["topic"], "0")
    # the poison record's offset was released: the group committed past every record
    assert wait_until(lambda: committed_offset(kafka_bootstrap, p["group"], p["topic"]) == 6,
                      30), committed_offset(kafka_bootstrap, p["group"], p["topic"])
    # truthful status and counters: consuming, one record failed, five published
    assert source_status(api)["status"] == "connected"
    c = counters(api)
    assert (c["received"], c["success"], c["failed"], c["failed.render"],
            c["dead_letter.success"]) == (6, 5, 1, 1, 1)
    assert p["proc"].terminate() == 0


def test_a_source_can_be_changed_after_a_poison_record(poisoned, kcat_produce, mosquitto_sub):
    p, api = poisoned, poisoned["api"]
    kcat_produce(p["topic"], [POISON], key="k")
    assert wait_until(lambda: counters(api).get("received", 0) >= 1, 30), counters(api)
    changed = {**p["source"], "description": "changed after a poison record"}
    changed["parameters"] = {**changed["parameters"], "topic_mapping": [
        {**changed["parameters"]["topic_mapping"][0], "payload_template": "v2:${value.data}"}]}
    r = api.put("/sources/kafka_consumer:src", json=changed)
    assert r.status_code == 200, r.text
    assert r.json()["description"] == "changed after a poison record"
    assert wait_until(lambda: source_status(api)["status"] == "connected", 60), source_status(api)
    with mosquitto_sub(f"poison-{p['tag']}/#", 2) as sub:
        kcat_produce(p["topic"], [GOOD[1], POISON, GOOD[2]], key="k")
        got = sub.wait(60)
    # the replaced source runs, with the new template, from the old one's final commit
    assert [m.text for m in got] == ["v2:good-1", "v2:good-2"]
    assert p["proc"].terminate() == 0


def test_a_record_whose_republish_fails_for_good_is_dead_lettered_and_the_rest_flow(
        republishing, kafka_bootstrap, kcat_produce, kcat_consume, mosquitto_sub):
    p, api = republishing, republishing["api"]
    with mosquitto_sub(f"poison-{p['tag']}/#", 2) as sub:
        # "+" makes the republished topic one no broker takes: the action fails that output
        kcat_produce(p["topic"], ["a", "+", "c"], key="k")
        got = sub.wait(30)
    assert [m.text for m in got] == ["a", "c"]
    [dead] = kcat_consume(p["dlq"], 1)
    headers = dict(dead["headers"])
    assert (dead["payload"], headers["mqferry-offset"]) == ("+", "1")
    assert headers["mqferry-error"] == (
        "rule r: action republish:out failed an output (failed.render)")
    # its offset was released once it was dead-lettered
    assert wait_until(lambda: committed_offset(kafka_bootstrap, p["group"], p["topic"]) == 3,
                      30), committed_offset(kafka_bootstrap, p["group"], p["topic"])
    c = counters(api)
    assert (c["received"], c["success"], c["failed"], c["failed.action"],
            c["dead_letter.success"]) == (3, 2, 1, 1, 1)
    assert (f"source kafka_consumer:src: record {p['topic']}/0@1: rule r: action republish:out "
            "failed an output (failed.render)") in p["proc"].log
    assert p["proc"].terminate() == 0


def test_a_record_the_rule_cannot_evaluate_is_dead_lettered_and_the_rest_flow(
        evaluating, kafka_bootstrap, kcat_produce, kcat_consume, mosquitto_sub):
    p, api = evaluating, evaluating["api"]
    values = ['{"n": 1}', "{", '{"n": 0}', '{"n": 2}']
    with mosquitto_sub(f"poison-{p['tag']}/#", 2) as sub:
        # "{" is not JSON: json_decode raises, the rule fails on that record; n = 0 is only
        # not selected (WHERE is false), which is no failure
        kcat_produce(p["topic"], values, key="k")
        got = sub.wait(30)
    assert [(m.topic, m.text) for m in got] == [
        (f"poison-{p['tag']}/1", values[0]), (f"poison-{p['tag']}/2", values[3])]
    [dead] = kcat_consume(p["dlq"], 1)
    headers = dict(dead["headers"])
    assert (dead["payload"], dead["key"], headers["mqferry-offset"]) == ("{", "k", "1")
    error = headers["mqferry-error"]
    assert error.startswith("rule r failed on the event (failed.exception: "
                            "bad_sql_function_argument: json_decode('{'): invalid JSON"), error
    # its offset was released once it was dead-lettered
    assert wait_until(lambda: committed_offset(kafka_bootstrap, p["group"], p["topic"]) == 4,
                      30), committed_offset(kafka_bootstrap, p["group"], p["topic"])
    c = counters(api)
    assert (c["received"], c["success"], c["failed"], c["failed.rule"],
            c["dead_letter.success"]) == (4, 3, 1, 1, 1)
    rule = api.get("/rules/r/metrics").json()
    rule = rule.get("metrics", rule)
    assert (rule["matched"], rule["passed"], rule["filtered"], rule["failed.exception"]) == (
        4, 2, 1, 1)
    assert f"source kafka_consumer:src: record {p['topic']}/0@1: {error}" in p["proc"].log
    assert p["proc"].terminate() == 0

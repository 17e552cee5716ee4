"""A record aiokafka cannot decode fails alone: real Kafka and Mosquitto, `mqferry run`.

kcat writes a record whose header key is not UTF-8 (Kafka's Java client cannot, librdkafka
can). aiokafka raises out of every fetch while it is there: the whole source stalled, every
partition. Now the records around it flow, it goes to the dead-letter topic with its
coordinates, and the group commits past it.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port
from tests.integration.test_poison_records import committed_offset, counters, wait_until
from tests.integration.witnesses import kcat_produce

pytestmark = pytest.mark.integration

#: a header key of one byte, 0xFF, which is not UTF-8 (os.fsencode turns the escape into it)
BAD_HEADER = "\udcff=x"


def test_an_undecodable_record_is_dead_lettered_and_every_partition_flows(
        kafka_bootstrap, mqtt_broker, new_topic, tmp_path, kcat_consume, mosquitto_sub):
    tag = uuid.uuid4().hex[:8]
    topic, dlq = new_topic(partitions=2), new_topic()
    port = free_port()
    group = f"mqferry-undecodable-{tag}"
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}",
                 "clientid": f"mqferry-undecodable-{tag}"},
        "api": {"listen": f"127.0.0.1:{port}"},
        "data_dir": str(tmp_path / "data"),
        "connectors": {"kafka_consumer": {"kc": {"bootstrap_hosts": kafka_bootstrap}}},
        "sources": {"kafka_consumer": {"src": {"connector": "kc", "parameters": {
            "group_id": group, "dead_letter_topic": dlq, "offset_commit_interval_seconds": 1,
            "offset_reset_policy": "earliest",
            "topic_mapping": [{"kafka_topic": topic, "mqtt_topic": f"undecodable-{tag}/out",
                               "qos": 1, "payload_template": "${value}"}]}}}},
    }
    # partition 1: two records, the undecodable one, two more; partition 0: three
    kcat_produce(kafka_bootstrap, topic, ["p1-a", "p1-b"], partition=1)
    kcat_produce(kafka_bootstrap, topic, ["bad"], key="k", partition=1,
                 options=["-H", BAD_HEADER])
    kcat_produce(kafka_bootstrap, topic, ["p1-c", "p1-d"], partition=1)
    kcat_produce(kafka_bootstrap, topic, ["p0-a", "p0-b", "p0-c"], partition=0)
    proc = MqferryProcess(config, tmp_path)
    auth = api_key(proc.config_path)
    with mosquitto_sub(f"undecodable-{tag}/#", 7) as sub:
        proc.start()
        try:
            proc.wait_ready(sources=1)
            got = sub.wait(60)
            assert sorted(m.text for m in got) == [
                "p0-a", "p0-b", "p0-c", "p1-a", "p1-b", "p1-c", "p1-d"], proc.log
            dead_letters = kcat_consume(dlq, 1)
            assert len(dead_letters) == 1, proc.log
            [dead] = dead_letters
            headers = dict(dead["headers"])
            assert headers["mqferry-error"].startswith("the record cannot be decoded: "), headers
            assert (headers["mqferry-topic"], headers["mqferry-partition"],
                    headers["mqferry-offset"]) == (topic, "1", "2")
            # committed past every record of both partitions, the undecodable one included
            assert wait_until(lambda: [committed_offset(kafka_bootstrap, group, topic, p)
                                       for p in (0, 1)] == [3, 5], 30)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v5", auth=auth,
                              timeout=30) as api:
                c = counters(api)
            # the records around it may be handed out twice while it is looked for (at
            # least once); it alone fails
            assert (c["failed"], c["failed.undecodable"]) == (1, 1), c
            assert c["received"] >= 8, c
            assert proc.terminate() == 0
        finally:
            if proc.proc is not None and proc.proc.poll() is None:
                proc.kill()

"""User-supplied regular expressions and jq programs never freeze the bridge.

A catastrophic pattern (``^(a+)+$`` on ``aaa...ab``) takes time doubling per character with a
backtracking engine: 40 bytes would hold the event loop for hours. A jq program asking for a
10-minute timeout would hold it for 10 minutes per message. Beside them, a good rule's stream
must reach Kafka (witnessed by kcat) as if they were not there.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.mqferry_process import MqferryProcess
from tests.integration.publisher import publish_many

pytestmark = pytest.mark.integration

GOOD = 100


def config(kafka, mqtt, prefix, sink, hostile_sql):
    return {
        "mqtt": {"server": f"{mqtt.host}:{mqtt.port}", "clientid": f"mqferry-{prefix}"},
        "api": {"enable": False},
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": kafka}}},
        "actions": {"kafka_producer": {"sink": {"connector": "k", "parameters": {
            "topic": sink, "message": {"value": "${.}"}}}}},
        "rules": {
            "hostile": {"sql": hostile_sql.format(prefix=prefix),
                        "actions": ["kafka_producer:sink"]},
            "good": {"sql": f'SELECT payload.d as d FROM "{prefix}/good"',
                     "actions": ["kafka_producer:sink"]},
        },
    }


@pytest.mark.parametrize(("hostile_sql", "payload", "log_text"), [
    ("SELECT regex_match(payload, '^(a+)+$') as m FROM \"{prefix}/hostile\"",
     b"a" * 40 + b"b", None),
    ("SELECT jq('last(range(.n))', payload, 600000) as j FROM \"{prefix}/hostile\"",
     b'{"n": 100000000000}', "timed out"),
], ids=["catastrophic-regex", "slow-jq"])
def test_a_hostile_function_call_does_not_hold_up_the_good_stream(
        tmp_path, kafka_bootstrap, mqtt_broker, new_topic, kcat_consume,
        hostile_sql, payload, log_text):
    prefix = f"hostile-{uuid.uuid4().hex[:8]}"
    sink = new_topic()
    app = MqferryProcess(config(kafka_bootstrap, mqtt_broker, prefix, sink, hostile_sql),
                         tmp_path).start()
    try:
        app.wait_ready(actions=1)
        publish_many(mqtt_broker.host, mqtt_broker.port,
                     [(f"{prefix}/hostile", payload)]
                     + [(f"{prefix}/good", json.dumps({"d": i}).encode()) for i in range(GOOD)])
        records = kcat_consume(sink, GOOD, timeout=60)
        good = sorted(json.loads(r["payload"])["d"] for r in records
                      if "d" in json.loads(r["payload"]))
        assert good == list(range(GOOD)), app.log
        if log_text is not None:
            app.wait_for_log(log_text)
        assert app.terminate() == 0
    finally:
        if app.proc is not None and app.proc.poll() is None:
            app.kill()

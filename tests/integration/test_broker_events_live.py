"""A rule FROM an EMQX broker event loads, says it never fires here, and indeed never fires.

mqferry is a client of the broker: a client connecting (mosquitto_pub) is no event it sees. The
real instance logs the warning at start; mosquitto_pub connects and publishes; kcat finds the
message rule's record and nothing from the event rule.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.mqferry_process import MqferryProcess

pytestmark = pytest.mark.integration


def test_an_event_rule_is_accepted_warned_about_and_never_fires(
        kafka_bootstrap, mqtt_broker, new_topic, mosquitto_pub, kcat_consume, tmp_path):
    p = f"bev-{uuid.uuid4().hex[:8]}"
    events_topic, messages_topic = new_topic(), new_topic()
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": f"mqferry-{p}"},
        "api": {"enable": False},
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {
            "ev": {"connector": "k", "parameters": {"topic": events_topic,
                                                    "message": {"value": "${.}"}}},
            "msg": {"connector": "k", "parameters": {"topic": messages_topic,
                                                     "message": {"value": "${.}"}}}}},
        "rules": {
            "connects": {"sql": 'SELECT clientid FROM "$events/client_connected", '
                                '"$events/session/subscribed"',
                         "actions": ["kafka_producer:ev"]},
            "messages": {"sql": f'SELECT payload.n AS n FROM "{p}/#"',
                         "actions": ["kafka_producer:msg"]}},
    }
    proc = MqferryProcess(config, tmp_path).start()
    try:
        proc.wait_ready(actions=2)
        proc.wait_for_log("rule connects selects $events/client_connected, "
                          "$events/session/subscribed")
        [line] = [ln for ln in proc.lines if "rule connects selects" in ln]
        assert "WARNING" in line and "never fires" in line, line
        mosquitto_pub(f"{p}/a", b'{"n": 7}', qos=1, client_id=f"dev-{p}")
        [record] = kcat_consume(messages_topic, 1, timeout=60)
        assert json.loads(record["payload"]) == {"n": 7}
        assert kcat_consume(events_topic, 0, timeout=3) == []
        assert proc.terminate() == 0
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()

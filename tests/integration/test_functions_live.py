"""EMQX's function semantics on a real message: mosquitto_pub in, kcat out.

One rule computes each function whose behaviour changed to match EMQX (see
``tests/rules/test_emqx_function_vectors.py`` for the sources of the expected values).
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.mqferry_process import MqferryProcess

pytestmark = pytest.mark.integration

SQL = (
    "SELECT strlen(payload.s) AS len, reverse(payload.s) AS rev, substr(payload.s, 1, 1) AS mid, "
    "bin2hexstr(hexstr2bin('6364f')) AS odd, bin2hexstr(hexstr2bin('0x0102', '0x'), '0X') AS pre, "
    "bin2hexstr(subbits(hexstr2bin('ABCD'), 1, 12, 'bits')) AS bits, "
    "is_empty(payload.m) AS empty_m, is_empty('{}') AS empty_s, "
    "is_null(payload.n) AS null_n, is_null(payload.gone) AS null_gone, "
    "date_to_unix_ts('second', '%Y-%m-%d %H-%M-%S', payload.d) AS ts "
    'FROM "{topic}/#"'
)


def test_functions_behave_as_in_emqx_on_a_real_message(
        kafka_bootstrap, mqtt_broker, new_topic, mosquitto_pub, kcat_consume, tmp_path):
    p = f"fn-{uuid.uuid4().hex[:8]}"
    sink = new_topic()
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": f"mqferry-{p}"},
        "api": {"enable": False},
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {"sink": {"connector": "k", "parameters": {
            "topic": sink, "message": {"value": "${.}"}}}}},
        "rules": {"f": {"sql": SQL.replace("{topic}", p), "actions": ["kafka_producer:sink"]}},
    }
    proc = MqferryProcess(config, tmp_path).start()
    try:
        proc.wait_ready(actions=1)
        payload = {"s": "a\r\nb", "m": {}, "d": "2022-05-26 10:40:12", "n": None}
        mosquitto_pub(f"{p}/x", json.dumps(payload).encode(), qos=1)
        [record] = kcat_consume(sink, 1, timeout=60)
        assert json.loads(record["payload"]) == {
            "len": 3, "rev": "b\r\na", "mid": "\r\n", "odd": "06364F", "pre": "0X0102",
            "bits": "ABC", "empty_m": True, "empty_s": True, "ts": 1653561612,
            # JSON null is defined: is_null is true for the missing field only
            "null_n": False, "null_gone": True}
        assert proc.terminate() == 0
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()

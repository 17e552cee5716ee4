"""``mqferry rules|actions ... -c FILE`` against a running ``mqferry run -c FILE`` on the real
brokers: the CLI finds the instance through the config (no MQFERRY_API_URL), creates a rule and
changes an action, and kcat sees the records go where the changes say."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port

pytestmark = pytest.mark.integration


def test_the_cli_changes_a_running_instance_found_through_its_config(
        kafka_bootstrap, mqtt_broker, new_topic, kcat_consume, mosquitto_pub, tmp_path):
    tag = uuid.uuid4().hex[:8]
    first, second = new_topic(), new_topic()
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}",
                 "clientid": f"mqferry-cli-{tag}"},
        "api": {"listen": f"0.0.0.0:{free_port()}"},
        "data_dir": str(tmp_path / "data"),
        "connectors": {"kafka_producer": {"kp": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {"sink": {"connector": "kp", "parameters": {
            "topic": first, "message": {"key": "", "value": "${payload}"}}}}},
    }
    proc = MqferryProcess(config, tmp_path)
    key, secret = api_key(proc.config_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MQFERRY_API")}
    env |= {"MQFERRY_API_KEY": key, "MQFERRY_API_SECRET": secret}
    exe = str(Path(sys.executable).with_name("mqferry"))

    def cli(*args: str) -> str:
        done = subprocess.run([exe, *args, "-c", str(proc.config_path)], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    proc.start()
    try:
        proc.wait_ready(actions=1)
        proc.wait_for_log("API listening")
        assert cli("rules", "create", "--id", "r", "--sql", f'SELECT payload FROM "cli-{tag}/#"',
                   "--action", "kafka_producer:sink") == "rule r created\n"
        mosquitto_pub(f"cli-{tag}/a", "one")
        assert [r["payload"] for r in kcat_consume(first, 1)] == ["one"]
        settings = tmp_path / "sink.yaml"
        settings.write_text(f"connector: kp\nparameters:\n  topic: {second}\n"
                            "  message: {key: '', value: '${payload}'}\n")
        assert cli("actions", "update", "kafka_producer:sink", "--file", str(settings)) == \
            "action kafka_producer:sink updated\n"
        mosquitto_pub(f"cli-{tag}/a", "two")
        assert [r["payload"] for r in kcat_consume(second, 1)] == ["two"]
        assert cli("rules", "disable", "r") == "rule r disabled\n"
        assert "r" in cli("rules", "list") and "false" in cli("rules", "list")
        assert cli("rules", "delete", "r") == "rule r deleted\n"
        proc.saved(lambda d: not d.get("rules"))  # the deleted rule leaves the file too
        assert proc.terminate() == 0
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.kill()

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mqferry._cli import build_cli
from mqferry._plugins import EXPECTED_BUILTINS, load_plugins
from mqferry_bench.runner import LoadSpec


def test_bench_is_a_builtin_plugin_command():
    plugins = load_plugins()
    assert "bench" in {i.name for i in plugins.infos()}
    assert "bench" in EXPECTED_BUILTINS
    result = CliRunner().invoke(build_cli(plugins), ["bench", "--help"])
    assert result.exit_code == 0
    assert "mqtt-kafka" in result.output
    assert "kafka-mqtt" in result.output


def test_bad_broker_address_is_a_usage_error():
    result = CliRunner().invoke(build_cli(), ["bench", "mqtt-kafka", "--kafka-topic", "t",
                                              "--mqtt", "nohostport"])
    assert result.exit_code == 2
    assert "expected HOST:PORT" in result.output


def test_count_below_streams_is_a_usage_error():
    result = CliRunner().invoke(build_cli(), ["bench", "kafka-mqtt", "--kafka-topic", "t",
                                              "--mqtt-topic", "x/#", "-n", "2", "--streams", "4"])
    assert result.exit_code == 2
    assert "count (2) must be at least streams (4)" in result.output


@pytest.mark.parametrize(("change", "message"), [
    ({"direction": "sideways"}, "direction"),
    ({"count": None, "duration": None}, "count or a duration"),
    ({"qos": 2}, "qos"),
    ({"streams": 0}, "streams"),
])
def test_load_spec_refuses_bad_settings(change, message):
    base = {"direction": "mqtt-kafka", "mqtt_host": "h", "mqtt_port": 1, "kafka": "k:1",
            "mqtt_topic": "t", "kafka_topic": "t"}
    with pytest.raises(ValueError, match=message):
        LoadSpec(**{**base, **change})

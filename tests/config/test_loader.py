import re
import textwrap
from pathlib import Path

import pytest

from mqferry._config import load_config, validate_config
from mqferry._errors import ConfigError
from mqferry._plugins import load_plugins


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


def validate(plugins, data):
    return validate_config(data, plugins.registries(), plugins.function_table())


def problems(plugins, data):
    with pytest.raises(ConfigError) as info:
        validate(plugins, data)
    return dict(info.value.problems)


GOOD = {
    "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": "127.0.0.1:9092"}}},
    "actions": {"kafka_producer": {"sink": {"connector": "k",
                                            "parameters": {"topic": "t-in"}}}},
    "rules": {"r1": {"sql": 'SELECT * FROM "t/#"', "actions": ["kafka_producer:sink"]}},
}


def test_a_valid_config_is_built_with_emqx_defaults(plugins):
    app = validate(plugins, GOOD)
    sink = app.actions["kafka_producer:sink"].config.parameters
    assert (sink.message.key, sink.message.value, sink.message.timestamp) == (
        "${.clientid}", "${.}", "${.timestamp}")
    assert sink.max_batch_bytes == 896 * 1024
    assert app.rules["r1"].action_ids == ("kafka_producer:sink",)
    assert app.rules["r1"].compiled.topic_filters == ("t/#",)
    assert app.raw.mqtt.clean_start is False
    assert app.raw.mqtt.delivery == "at_least_once"


def test_unknown_keys_are_errors_with_their_path(plugins):
    data = {**GOOD, "mqtt": {"server": "h:1883", "bogus": 1}}
    data["connectors"] = {"kafka_producer": {"k": {"bootstrap_hosts": "h:9092", "extra": 2}}}
    found = problems(plugins, data)
    assert found["mqtt.bogus"] == "unknown field"
    assert found["connectors.kafka_producer.k.extra"] == "unknown field"


def test_unknown_top_level_key(plugins):
    assert problems(plugins, {**GOOD, "bridges": {}})["bridges"] == "unknown field"


def test_missing_connector_is_named(plugins):
    data = {**GOOD, "connectors": {}}
    assert problems(plugins, data)["actions.kafka_producer.sink.connector"] == (
        "no kafka_producer connector named 'k'")


def test_unknown_action_type_lists_the_known_ones(plugins):
    data = {**GOOD, "actions": {"kafka_produce": {"x": {}}}}
    msg = problems(plugins, data)["actions.kafka_produce"]
    assert "unknown action type 'kafka_produce'" in msg
    assert "kafka_producer" in msg and "republish" in msg


def test_unknown_action_reference_in_a_rule(plugins):
    data = {**GOOD, "rules": {"r1": {"sql": 'SELECT * FROM "t/#"', "actions": ["nope"]}}}
    assert problems(plugins, data)["rules.r1.actions[0]"] == (
        "unknown action 'nope' (write it as <type>:<name>)")


def test_a_broken_rule_points_at_the_place(plugins):
    data = {**GOOD, "rules": {"r1": {"sql": 'SELECT * FORM "t/#"', "actions": []}}}
    msg = problems(plugins, data)["rules.r1.sql"]
    assert msg.startswith("line 1, col 10")


def test_every_problem_is_reported_at_once(plugins):
    data = {
        "mqtt": {"receive_maximum": 0},
        "connectors": {"kafka_producer": {"k": {}}},
        "actions": {"kafka_producer": {"sink": {"connector": "k", "parameters": {}}}},
        "rules": {"r1": {"sql": "SELECT", "actions": []}},
    }
    found = problems(plugins, data)
    assert set(found) >= {
        "mqtt.receive_maximum",
        "connectors.kafka_producer.k.bootstrap_hosts",
        "actions.kafka_producer.sink.parameters.topic",
        "rules.r1.sql",
    }


def test_bad_values_name_the_field(plugins):
    data = {**GOOD, "actions": {"kafka_producer": {"sink": {"connector": "k", "parameters": {
        "topic": "t", "max_batch_bytes": "lots", "compression": "brotli",
        "kafka_headers": "x-${a}"}}}}}
    found = problems(plugins, data)
    assert "expected a size" in found["actions.kafka_producer.sink.parameters.max_batch_bytes"]
    assert "compression" in " ".join(found)
    assert found["actions.kafka_producer.sink.parameters.kafka_headers"] == (
        "must be a single placeholder like ${pub_props}")


def test_key_dispatch_needs_a_key(plugins):
    data = {**GOOD, "actions": {"kafka_producer": {"sink": {"connector": "k", "parameters": {
        "topic": "t", "partition_strategy": "key_dispatch", "message": {"key": ""}}}}}}
    found = problems(plugins, data)
    assert "message key cannot be empty" in found["actions.kafka_producer.sink.parameters"]


def test_rule_from_an_unknown_source(plugins):
    data = {**GOOD, "rules": {"r": {"sql": 'SELECT * FROM "$bridges/kafka_consumer:nope"'}}}
    assert "no source 'kafka_consumer:nope'" in problems(plugins, data)["rules.r.sql"]


def test_inline_republish_action(plugins):
    data = {**GOOD, "rules": {"r": {"sql": 'SELECT * FROM "t/#"', "actions": [
        {"function": "republish", "args": {"topic": "out/${topic}"}}]}}}
    app = validate(plugins, data)
    assert app.rules["r"].action_ids == ("republish:r.0",)
    assert app.actions["republish:r.0"].config.parameters.payload == "${payload}"


def test_consumer_topic_repeated_in_mappings(plugins):
    data = {
        "connectors": {"kafka_consumer": {"c": {"bootstrap_hosts": "h:9092"}}},
        "sources": {"kafka_consumer": {"s": {"connector": "c", "parameters": {"topic_mapping": [
            {"kafka_topic": "a", "mqtt_topic": "x"}, {"kafka_topic": "a", "mqtt_topic": "y"}]}}}},
    }
    found = problems(plugins, data)
    assert "appears in more than one topic_mapping entry" in found[
        "sources.kafka_consumer.s.parameters"]


def test_secrets_are_not_echoed_in_errors(plugins, monkeypatch):
    data = {"mqtt": {"password": {"not": "a string"}, "username": "u"}}
    found = problems(plugins, data)
    assert "not" not in found["mqtt.password"]


def test_load_config_reports_yaml_errors_with_position(plugins, tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("mqtt:\n  server: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+, col \d+: invalid YAML"):
        load_config(f, plugins.registries())


def test_load_config_reads_the_quickstart_example(plugins):
    app = load_config("examples/quickstart.yaml", plugins.registries(), plugins.function_table())
    assert set(app.sources) == {"kafka_consumer:my-kafka-source"}
    assert app.rules["my_rule"].action_ids == ("kafka_producer:my-kafka-sink",)


def test_the_quickstart_example_takes_every_port_from_the_environment(plugins, monkeypatch):
    text = Path("examples/quickstart.yaml").read_text()
    # Every host:port is a reference: no port is written in.
    assert re.findall(r"127\.0\.0\.1:(\S+)", text) == [
        "${MQFERRY_MQTT_PORT:-1883}", "${MQFERRY_KAFKA_PORT:-9092}",
        "${MQFERRY_KAFKA_PORT:-9092}", "${MQFERRY_API_PORT:-18083}"]
    monkeypatch.setenv("MQFERRY_MQTT_PORT", "11883")
    monkeypatch.setenv("MQFERRY_KAFKA_PORT", "19092")
    monkeypatch.setenv("MQFERRY_API_PORT", "28083")
    app = load_config("examples/quickstart.yaml", plugins.registries(), plugins.function_table())
    assert app.raw.mqtt.port == 11883
    assert app.raw.api.port == 28083
    for cid in ("kafka_producer:my-kafka", "kafka_consumer:my-kafka-consumer"):
        assert app.connectors[cid].config.bootstrap_hosts == "127.0.0.1:19092"
    for name in ("MQFERRY_MQTT_PORT", "MQFERRY_KAFKA_PORT", "MQFERRY_API_PORT"):
        monkeypatch.delenv(name)
    app = load_config("examples/quickstart.yaml", plugins.registries(), plugins.function_table())
    assert (app.raw.mqtt.port, app.raw.api.port) == (1883, 18083)


def test_missing_file(plugins, tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "none.yaml", plugins.registries())


def test_top_level_must_be_a_mapping(plugins, tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(textwrap.dedent("- a\n- b\n"))
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(f, plugins.registries())

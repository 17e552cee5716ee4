"""Config errors people read: a typo is told the closest known name, an invalid component is
reported once (not again by what refers to it), and the count reads "1 problem"."""

from __future__ import annotations

import copy

import pytest
from click.testing import CliRunner

from mqferry._cli import build_cli
from mqferry._config import validate_config
from mqferry._errors import ConfigError
from mqferry._plugins import load_plugins

GOOD = {
    "mqtt": {"server": "127.0.0.1:1883"},
    "connectors": {"kafka_producer": {"my-kafka": {"bootstrap_hosts": "127.0.0.1:9092"}},
                   "kafka_consumer": {"my-consumer": {"bootstrap_hosts": "127.0.0.1:9092"}}},
    "actions": {"kafka_producer": {"my-kafka-sink": {"connector": "my-kafka",
                                                     "parameters": {"topic": "t-in"}}}},
    "sources": {"kafka_consumer": {"my-source": {
        "connector": "my-consumer",
        "parameters": {"topic_mapping": [{"kafka_topic": "k", "mqtt_topic": "m"}]}}}},
    "rules": {"r1": {"sql": 'SELECT * FROM "t/#"', "actions": ["kafka_producer:my-kafka-sink"]},
              "r2": {"sql": 'SELECT * FROM "$bridges/kafka_consumer:my-source"'}},
}


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


def problems(plugins, data):
    with pytest.raises(ConfigError) as info:
        validate_config(data, plugins.registries(), plugins.function_table())
    return info.value.problems


def changed(edit):
    data = copy.deepcopy(GOOD)
    edit(data)
    return data


def test_a_typo_in_a_connector_is_told_the_closest_key(plugins):
    def typo(data):
        conn = data["connectors"]["kafka_producer"]["my-kafka"]
        conn["bootstrap_host"] = conn.pop("bootstrap_hosts")
    found = problems(plugins, changed(typo))
    # Only the real error: the action bound to the connector is not told it does not exist.
    assert sorted(found) == [
        ("connectors.kafka_producer.my-kafka.bootstrap_host",
         "unknown field (did you mean 'bootstrap_hosts'?)"),
        ("connectors.kafka_producer.my-kafka.bootstrap_hosts", "Field required"),
    ]


@pytest.mark.parametrize(("edit", "path", "message"), [
    (lambda d: d.update(conectors=d.pop("connectors")), "conectors",
     "unknown field (did you mean 'connectors'?)"),
    (lambda d: d["mqtt"].update(clean_strat=True), "mqtt.clean_strat",
     "unknown field (did you mean 'clean_start'?)"),
    (lambda d: d["actions"]["kafka_producer"]["my-kafka-sink"]["parameters"].update(
        mesage={}), "actions.kafka_producer.my-kafka-sink.parameters.mesage",
     "unknown field (did you mean 'message'?)"),
    (lambda d: d["sources"]["kafka_consumer"]["my-source"]["parameters"]["topic_mapping"][0]
     .update(payload_templat="${.}"),
     "sources.kafka_consumer.my-source.parameters.topic_mapping[0].payload_templat",
     "unknown field (did you mean 'payload_template'?)"),
    (lambda d: d["rules"]["r1"].update(descriptoin="x"), "rules.r1.descriptoin",
     "unknown field (did you mean 'description'?)"),
    (lambda d: d["mqtt"].update(zzzz=1), "mqtt.zzzz", "unknown field"),
])
def test_an_unknown_key_gets_a_did_you_mean_when_one_is_close(plugins, edit, path, message):
    assert (path, message) in problems(plugins, changed(edit))


def test_a_mistyped_section_does_not_cascade(plugins):
    def typo(data):
        data["conectors"] = data.pop("connectors")
        data["acions"] = data.pop("actions")
    assert problems(plugins, changed(typo)) == [
        ("conectors", "unknown field (did you mean 'connectors'?)"),
        ("acions", "unknown field (did you mean 'actions'?)"),
    ]


def test_a_typo_in_a_rules_action_reference(plugins):
    def typo(data):
        data["rules"]["r1"]["actions"] = ["kafka_producer:my-kafka-snk"]
    assert problems(plugins, changed(typo)) == [(
        "rules.r1.actions[0]",
        "unknown action 'kafka_producer:my-kafka-snk' (did you mean "
        "'kafka_producer:my-kafka-sink'?)")]


def test_an_unknown_type_is_told_once_with_the_closest(plugins):
    def typo(data):
        data["actions"]["kafka_produce"] = data["actions"].pop("kafka_producer")
        data["actions"]["kafka_produce"]["other"] = {"connector": "my-kafka"}
    found = problems(plugins, changed(typo))
    # The rule that sends to the mistyped action is not told again.
    assert len(found) == 1, found
    path, message = found[0]
    assert path == "actions.kafka_produce"
    assert message.startswith("unknown action type 'kafka_produce' (did you mean "
                              "'kafka_producer'?) (known: ")


def test_a_mistyped_connector_type_does_not_cascade(plugins):
    def typo(data):
        data["connectors"]["kafka_produce"] = data["connectors"].pop("kafka_producer")
    found = problems(plugins, changed(typo))
    assert [p for p, _ in found] == ["connectors.kafka_produce"], found


def test_invalid_action_and_source_are_not_reported_again_by_their_users(plugins):
    def break_them(data):
        data["actions"]["kafka_producer"]["my-kafka-sink"]["parameters"]["topik"] = "x"
        data["sources"]["kafka_consumer"]["my-source"]["parameters"]["offset_reset"] = "x"
    paths = [p for p, _ in problems(plugins, changed(break_them))]
    assert paths == ["actions.kafka_producer.my-kafka-sink.parameters.topik",
                     "sources.kafka_consumer.my-source.parameters.offset_reset"]


def test_a_connector_that_is_really_missing_is_still_named(plugins):
    def missing(data):
        del data["connectors"]["kafka_producer"]
    assert problems(plugins, changed(missing)) == [(
        "actions.kafka_producer.my-kafka-sink.connector",
        "no kafka_producer connector named 'my-kafka'")]


@pytest.mark.parametrize(("body", "count"), [
    ("mqtt: {server: 'h:1883', nope: 1}\n", "(1 problem):"),
    ("mqtt: {server: 'h:1883', nope: 1, nope2: 2}\n", "(2 problems):"),
])
def test_the_count_of_problems_reads_well(plugins, tmp_path, body, count):
    path = tmp_path / "c.yaml"
    path.write_text(body)
    result = CliRunner().invoke(build_cli(plugins), ["run", "-c", str(path)],
                                obj={"plugins": plugins})
    assert result.exit_code == 1
    assert f"{path}: invalid configuration {count}" in result.output

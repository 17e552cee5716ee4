"""One rule validated against an already validated configuration, as the whole file would check
it, without looking at the other rules."""

from __future__ import annotations

import copy

import pytest

from mqferry._config import validate_config, validate_rule
from mqferry._config.models import ApiConfig
from mqferry._errors import ConfigError
from mqferry._plugins import load_plugins

GOOD = {
    "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": "127.0.0.1:9092"}}},
    "actions": {"kafka_producer": {"sink": {"connector": "k",
                                            "parameters": {"topic": "t-in"}}}},
    "rules": {"r1": {"sql": 'SELECT * FROM "t/#"', "actions": ["kafka_producer:sink"]}},
}


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


@pytest.fixture(scope="module")
def config(plugins):
    return validate_config(GOOD, plugins.registries(), plugins.function_table())


def one(plugins, config, body, rule_id="r2"):
    return validate_rule(config, rule_id, body, plugins.registries(), plugins.function_table())


def whole(plugins, body, rule_id="r2"):
    data = copy.deepcopy(GOOD)
    data["rules"][rule_id] = body
    return validate_config(data, plugins.registries(), plugins.function_table())


def test_a_valid_rule_is_compiled_and_the_config_is_untouched(plugins, config):
    before = (dict(config.rules), dict(config.actions))
    spec = one(plugins, config, {"sql": 'SELECT payload.v AS v FROM "a/+"',
                                 "actions": ["kafka_producer:sink"], "description": "d"})
    assert spec.id == "r2"
    assert spec.compiled.topic_filters == ("a/+",)
    assert spec.action_ids == ("kafka_producer:sink",)
    assert spec.config.description == "d"
    assert (dict(config.rules), dict(config.actions)) == before


@pytest.mark.parametrize("body", [
    {"sql": "SELECT FROM"},
    {"sql": 'SELECT * FROM "t"', "actions": ["kafka_producer:nope"]},
    {"sql": 'SELECT * FROM "t"', "actions": ["sink"]},
    {"sql": 'SELECT * FROM "$bridges/kafka_consumer:none"'},
    {"sql": 'SELECT * FROM "t"', "actions": [{"function": "nope", "args": {}}]},
    {"sql": 'SELECT * FROM "t"', "colour": "red"},
    {"sql": 'SELECT * FROM "t"', "description": "d" * 10_001},
    {"sql": "S" * 70_000},
    {"actions": []},
])
def test_problems_are_those_of_the_whole_file(plugins, config, body):
    with pytest.raises(ConfigError) as single:
        one(plugins, config, body)
    with pytest.raises(ConfigError) as full:
        whole(plugins, body)
    assert single.value.problems
    assert single.value.problems == full.value.problems


def test_inline_actions_are_built_for_the_rule_only(plugins, config):
    spec = one(plugins, config, {"sql": 'SELECT * FROM "t"',
                                 "actions": [{"function": "republish", "args": {"topic": "o"}}]})
    assert spec.action_ids == ("republish:r2.0",)
    assert "republish:r2.0" not in config.actions


def test_api_limits_settings():
    api = ApiConfig.model_validate({"max_body_size": "2MB", "max_json_depth": 32})
    assert (api.max_body_size, api.max_json_depth) == (2 * 1024 * 1024, 32)
    assert (ApiConfig().max_body_size, ApiConfig().max_json_depth) == (1024 * 1024, 64)
    for bad in ({"max_body_size": "10B"}, {"max_body_size": "lots"}, {"max_json_depth": 0},
                {"max_json_depth": 1000}):
        with pytest.raises(ValueError, match="max_"):
            ApiConfig.model_validate(bad)


@pytest.mark.parametrize(("flt", "why"), [
    ("/".join(["l"] * 129), "129 levels, more than 128 (EMQX's default max_topic_levels"),
    ("/".join(["l"] * 202), "202 levels"),
    ("é" * 32_768, "longer than 65535 bytes"),
])
def test_a_filter_a_broker_refuses_is_refused_naming_the_rule_and_the_filter(
        plugins, config, flt, why):
    body = {"sql": f'SELECT * FROM "ok/#", "{flt}"', "actions": ["kafka_producer:sink"]}
    with pytest.raises(ConfigError) as single:
        one(plugins, config, body, rule_id="deep")
    with pytest.raises(ConfigError) as full:
        whole(plugins, body, rule_id="deep")
    for err in (single, full):
        text = str(err.value)
        assert "rules.deep" in text and why in text and repr(flt[:40])[:-1] in text, text
        assert len(text) < 1000  # the filter is cut short, not written out whole


def test_the_deepest_filter_a_broker_takes_is_accepted(plugins, config):
    flt = "/".join(["l"] * 128)
    spec = one(plugins, config, {"sql": f'SELECT * FROM "{flt}"',
                                 "actions": ["kafka_producer:sink"]})
    assert spec.compiled.topic_filters == (flt,)

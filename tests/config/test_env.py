"""``${NAME}`` and ``${NAME:-default}`` in any string of the config file, as EMQX's HOCON."""

from __future__ import annotations

import pytest

from mqferry._config import validate_config
from mqferry._config.env import expand, expand_string, keep_references
from mqferry._config.loader import load_config
from mqferry._config.yamlfile import read_yaml
from mqferry._errors import ConfigError
from mqferry._plugins import load_plugins

ENV = {"PORT": "19092", "EMPTY": ""}


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:${PORT}", "127.0.0.1:19092"),
    ("127.0.0.1:${NOPE:-1883}", "127.0.0.1:1883"),
    ("${PORT:-1}", "19092"),
    ("${EMPTY:-x}", ""),  # set, even if empty, wins over the default
    ("${NOPE:-}", ""),
    ("${NOPE:-a:b/c d}", "a:b/c d"),
    ("$${PORT}", "${PORT}"),  # the escape of a literal
    ("$$${PORT}", "$${PORT}"),
    ("${.clientid}/${payload}/${topic}", "${.clientid}/${payload}/${topic}"),  # templates
    ("a ${PORT}${PORT} b", "a 1909219092 b"),
    ("no reference $ {PORT} $PORT", "no reference $ {PORT} $PORT"),
])
def test_expand_string(text, expected):
    assert expand_string(text, ENV) == expected


def test_a_value_is_not_expanded_again():
    assert expand_string("${A}", {"A": "${B}", "B": "x"}) == "${B}"


def test_every_string_value_is_expanded_keys_and_other_types_are_not():
    data = {"${PORT}": ["a${PORT}", 1, None, {"k": "${NOPE:-d}"}], "b": True}
    assert expand(data, environ=ENV) == {"${PORT}": ["a19092", 1, None, {"k": "d"}], "b": True}


def test_an_unset_variable_names_itself_and_its_place():
    data = {"connectors": {"kafka_producer": {"k": {"bootstrap_hosts": ["h:${PORT}",
                                                                         "h:${MISSING_PORT}"]}}},
            "api": {"listen": "${ALSO_MISSING}"}}
    with pytest.raises(ConfigError) as info:
        expand(data, environ=ENV)
    assert dict(info.value.problems) == {
        "connectors.kafka_producer.k.bootstrap_hosts[1]":
            "environment variable MISSING_PORT is not set "
            "(set it, or give a default: ${MISSING_PORT:-value})",
        "api.listen": "environment variable ALSO_MISSING is not set "
                      "(set it, or give a default: ${ALSO_MISSING:-value})",
    }


def test_a_whole_scalar_reference_validates_as_its_type(plugins, tmp_path, monkeypatch):
    monkeypatch.setenv("MQFERRY_TEST_PORT", "18883")
    monkeypatch.delenv("MQFERRY_TEST_UNSET", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text(
        "mqtt:\n"
        "  server: 127.0.0.1:${MQFERRY_TEST_PORT}\n"
        "  keepalive: ${MQFERRY_TEST_UNSET:-30s}\n"
        "  receive_maximum: ${MQFERRY_TEST_UNSET:-64}\n"
        "api:\n"
        "  listen: 127.0.0.1:${MQFERRY_TEST_UNSET:-18084}\n")
    cfg = load_config(path, plugins.registries(), plugins.function_table())
    assert cfg.raw.mqtt.server == "127.0.0.1:18883"
    assert cfg.raw.mqtt.receive_maximum == 64
    assert cfg.raw.mqtt.keepalive == 30.0
    assert cfg.raw.api.port == 18084
    # The text as written stays available for the write-back.
    assert read_yaml(path, env=False)["mqtt"]["server"] == "127.0.0.1:${MQFERRY_TEST_PORT}"


def test_an_unset_variable_is_a_config_error_of_the_file(plugins, tmp_path, monkeypatch):
    monkeypatch.delenv("MQFERRY_TEST_UNSET", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text("mqtt:\n  server: 127.0.0.1:${MQFERRY_TEST_UNSET}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, plugins.registries(), plugins.function_table())
    assert info.value.problems == [("mqtt.server", "environment variable MQFERRY_TEST_UNSET is "
                                    "not set (set it, or give a default: "
                                    "${MQFERRY_TEST_UNSET:-value})")]


def test_a_secret_from_a_reference_with_a_default(plugins, monkeypatch):
    monkeypatch.delenv("MQFERRY_TEST_PW", raising=False)
    data = {"mqtt": {"server": "h:1883", "password": "${MQFERRY_TEST_PW:-fallback}"}}
    cfg = validate_config(expand(data), plugins.registries(), plugins.function_table())
    assert cfg.raw.mqtt.password.get_secret_value() == "fallback"
    assert "fallback" not in cfg.raw.mqtt.model_dump_json()


def test_keep_references_puts_back_the_files_text_where_a_client_echoed_it(monkeypatch):
    monkeypatch.setenv("MQFERRY_TEST_PORT", "19092")
    old = {"bootstrap_hosts": "h:${MQFERRY_TEST_PORT}", "topic": "${MQFERRY_TEST_NO:-t}",
           "literal": "$${X}"}
    new = {"bootstrap_hosts": "h:19092", "topic": "t", "literal": "${X}", "extra": "${.x}"}
    assert keep_references(new, old) == {**old, "extra": "${.x}"}
    # A changed value is the client's (and has no reference).
    assert keep_references({**new, "topic": "u"}, old)["topic"] == "u"


def test_keep_references_refuses_a_clients_reference(monkeypatch):
    old = {"a": {"topic": "t"}, "rules": [{"sql": "x"}]}
    new = {"a": {"topic": "${HOME}"}, "rules": [{"sql": "SELECT '${SECRET:-x}'"}]}
    with pytest.raises(ConfigError) as info:
        keep_references(new, old, "actions")
    assert [p for p, _ in info.value.problems] == ["actions.a.topic", "actions.rules[0].sql"]
    assert "cannot be sent through the API" in info.value.problems[0][1]


def test_a_command_reading_one_section_expands_only_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MQFERRY_TEST_PORT", "28083")
    monkeypatch.delenv("MQFERRY_TEST_PW", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text("api:\n  listen: 127.0.0.1:${MQFERRY_TEST_PORT}\n"
                    "mqtt:\n  password: ${MQFERRY_TEST_PW}\n")
    data = read_yaml(path, env=("api",))
    assert data["api"]["listen"] == "127.0.0.1:28083"
    assert data["mqtt"] == {"password": "${MQFERRY_TEST_PW}"}  # as written
    with pytest.raises(ConfigError, match="MQFERRY_TEST_PW is not set"):
        read_yaml(path)

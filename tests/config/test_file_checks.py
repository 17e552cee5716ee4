"""What ``mqferry config validate`` refuses in the file itself: a key written twice, aliases that
expand beyond reason, ports out of range, and every problem at once with an unset variable."""

from __future__ import annotations

import textwrap
import time

import pytest
from click.testing import CliRunner

from mqferry._cli import build_cli
from mqferry._config import load_config
from mqferry._config.safeyaml import MAX_EXPANDED_NODES, load_yaml
from mqferry._errors import ConfigError
from mqferry._plugins import load_plugins


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


@pytest.fixture
def validate(plugins, tmp_path):
    cli = build_cli(plugins)

    def run(text: str) -> tuple[int, list[str]]:
        f = tmp_path / "mqferry.yaml"
        f.write_text(textwrap.dedent(text))
        result = CliRunner().invoke(cli, ["config", "validate", str(f)],
                                    obj={"plugins": plugins})
        return result.exit_code, result.output.splitlines()

    return run


def test_a_key_written_twice_is_named_with_its_lines(validate):
    code, lines = validate("""\
        mqtt:
          server: 127.0.0.1:1883
          clientid: a
          server: 127.0.0.1:1884
        rules: {}
        rules: {}
    """)
    assert code == 1
    assert any("mqtt.server: line 4, col 3: duplicate key 'server' (first at line 2, col 3)"
               in line for line in lines), lines
    assert any("rules: line 6, col 1: duplicate key 'rules' (first at line 5, col 1)" in line
               for line in lines), lines


def test_merge_keys_may_be_overridden():
    data = load_yaml("base: &b {x: 1, y: 2}\nother: {<<: *b, y: 3}\n")
    assert data["other"] == {"x": 1, "y": 3}


def test_an_alias_bomb_is_refused_quickly(validate):
    bomb = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):  # 9**9 values in all
        bomb.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    started = time.monotonic()
    code, lines = validate("\n".join(bomb) + "\n")
    assert time.monotonic() - started < 2
    assert code == 1
    assert any(f"the aliases expand to more than {MAX_EXPANDED_NODES:,} values" in line
               for line in lines), lines


def test_a_recursive_alias_is_refused():
    with pytest.raises(ConfigError, match="recursive"):
        load_yaml("a: &a [1, *a]\n")


def test_moderate_aliases_are_fine():
    data = load_yaml("base: &b {x: 1}\nlist: [*b, *b, *b]\n")
    assert data["list"] == [{"x": 1}] * 3


@pytest.mark.parametrize(("text", "where"), [
    ("mqtt: {server: '127.0.0.1:99999'}", "mqtt.server: port 99999 is out of range"),
    ("mqtt: {server: 'h:0'}", "mqtt.server: port 0 is out of range"),
    ("connectors: {kafka_producer: {k: {bootstrap_hosts: 'a:9092,b:70000'}}}",
     "connectors.kafka_producer.k.bootstrap_hosts: invalid host 'b:70000': port "
     "70000 is out of range"),
    ("connectors: {mqtt: {m: {server: 'h:65536'}}}",
     "connectors.mqtt.m.server: port 65536 is out of range"),
])
def test_a_port_out_of_range_is_refused(validate, text, where):
    code, lines = validate(text + "\n")
    assert code == 1
    assert any(where in line for line in lines), lines


def test_ports_in_range_pass(plugins, tmp_path):
    f = tmp_path / "ok.yaml"
    f.write_text("mqtt: {server: 'h:65535'}\n"
                 "connectors: {kafka_producer: {k: {bootstrap_hosts: '[::1]:1,b'}}}\n")
    load_config(f, plugins.registries(), plugins.function_table())


def test_an_unset_variable_is_reported_with_every_other_problem(validate, monkeypatch):
    monkeypatch.delenv("MQFERRY_TEST_UNSET", raising=False)
    code, lines = validate("""\
        mqtt: {server: "127.0.0.1:${MQFERRY_TEST_UNSET}"}
        conectors: {}
        api: {listen: "nowhere"}
    """)
    assert code == 1
    text = "\n".join(lines)
    assert "mqtt.server: environment variable MQFERRY_TEST_UNSET is not set" in text
    assert "conectors: unknown field" in text
    assert "api.listen:" in text
    # the value left unexpanded is not told again that it is invalid
    assert "expected host or host:port" not in text

"""A third-party plugin installed as its own distribution (tox env ``thirdparty``)."""

import json

import pytest
from click.testing import CliRunner

from mqferry._cli import build_cli
from mqferry._rules import evaluate_sql
from mqferry.testing import build_app, load_plugins, wait_until

pytestmark = pytest.mark.thirdparty


def test_discovered_and_listed_with_its_version():
    plugins = load_plugins()
    result = CliRunner().invoke(build_cli(plugins), ["plugins"], obj={"plugins": plugins})
    row = next(line for line in result.output.splitlines() if line.startswith("sample "))
    assert "mqferry-sample-plugin" in row and "1.2.3" in row
    assert "register_action_types" in row and "register_functions" in row


def test_its_rule_function_works_in_sql():
    table = load_plugins().function_table()
    out = evaluate_sql('SELECT my_func(payload.s) AS s, my_func(3, 4) AS n FROM "t/#"',
                       {"topic": "t/1", "payload": '{"s": "ab"}'}, table)
    assert out == {"s": "abab", "n": 12}


def test_can_be_disabled(monkeypatch):
    monkeypatch.setenv("MQFERRY_DISABLE_PLUGINS", "sample")
    plugins = load_plugins()
    assert "file_sink" not in plugins.registries().actions
    assert "sample" in plugins.disabled


async def test_its_action_type_receives_rule_outputs(tmp_path):
    out_file = tmp_path / "out.jsonl"
    config = {
        "actions": {"file_sink": {"f1": {"parameters": {"path": str(out_file)}}}},
        "rules": {"r1": {"sql": 'SELECT my_func(payload.n) AS n FROM "t/#"',
                         "actions": ["file_sink:f1"]}},
    }
    async with build_app(config, plugins=load_plugins(), data_dir=tmp_path) as harness:
        harness.mqtt.deliver("t/1", b'{"n": 21}', qos=0)
        await wait_until(lambda: out_file.exists() and out_file.read_text().strip() != "")
        assert [json.loads(line) for line in out_file.read_text().splitlines()] == [{"n": 42}]
        assert harness.app.rules["r1"].metrics.get("actions.success") == 1


def test_mqferry_rule_test_knows_its_rule_function():
    # the installed `mqferry` command, as a user runs it: it loads the plugins as `run` does
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("mqferry")
    done = subprocess.run([str(exe), "rule", "test", "--sql",
                           'SELECT my_func(payload.s) AS s FROM "t/#"', "--payload", '{"s": "ab"}'],
                          capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, json.loads(done.stdout)) == (0, {"s": "abab"}), done.stderr

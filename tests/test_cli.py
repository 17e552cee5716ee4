import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from mqferry._cli import build_cli
from mqferry._plugins import load_plugins


@pytest.fixture
def run():
    plugins = load_plugins()
    cli = build_cli(plugins)

    def invoke(*args):
        return CliRunner().invoke(cli, list(args), obj={"plugins": plugins})

    return invoke


def test_help_lists_the_commands(run):
    result = run("--help")
    assert result.exit_code == 0
    for cmd in ("run", "config", "plugins", "rule"):
        assert f"  {cmd} " in result.output


def test_validate_a_good_file(run):
    result = run("config", "validate", "examples/quickstart.yaml")
    assert result.exit_code == 0
    assert "valid (2 connectors, 1 actions, 1 sources, 1 rules)" in result.output


def test_validate_prints_every_problem_with_its_path(run, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(textwrap.dedent("""
        mqtt: {server: "h:1883", nope: 1}
        rules:
          r1: {sql: 'SELECT * FORM "t/#"', actions: ["kafka_producer:missing"]}
    """))
    result = run("config", "validate", str(f))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "mqtt.nope: unknown field" in lines
    assert any(line.startswith("rules.r1.sql: line 1, col 10") for line in lines)


def test_plugins_lists_builtins_with_hooks(run):
    result = run("plugins")
    assert result.exit_code == 0
    row = next(line for line in result.output.splitlines() if line.startswith("kafka_producer "))
    assert "mqferry" in row and "register_action_types" in row and "register_connector_types" in row


def test_run_refuses_an_invalid_config_without_a_traceback(run, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("actions: {kafka_producer: {s: {connector: nope, parameters: {topic: t}}}}\n")
    result = run("run", "-c", str(f))
    assert result.exit_code == 1
    assert "actions.kafka_producer.s.connector: no kafka_producer connector named 'nope'" in (
        result.output)
    assert "Traceback" not in result.output


def test_run_loop_choices_are_checked(run, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("mqtt: {server: '127.0.0.1:1'}\n")
    result = run("run", "-c", str(cfg), "--loop", "trio")
    assert result.exit_code == 2
    assert "'trio' is not one of 'asyncio', 'uvloop'" in result.output


def test_the_loop_runner_follows_the_choice(monkeypatch):
    import asyncio
    import sys

    import click

    from mqferry._cli import _runner

    assert _runner("asyncio") is asyncio.run
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    with pytest.raises(click.ClickException, match="uvloop is not installed"):
        _runner("uvloop")


def test_the_uvloop_runner_where_uvloop_is_installed():
    from mqferry._cli import _runner

    uvloop = pytest.importorskip("uvloop")
    assert _runner("uvloop") is uvloop.run


def test_validate_refuses_a_rule_with_an_invalid_literal_pattern(run, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(textwrap.dedent("""
        rules:
          r1: {sql: "SELECT regex_match(payload, '(a') AS m FROM \\"t/#\\""}
          r2: {sql: "SELECT regex_match(payload, '((a{1000}){1000}){1000}') AS m FROM \\"t/#\\""}
    """))
    result = run("config", "validate", str(f))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert ("rules.r1.sql: line 1, col 8: regex_match(): invalid regular expression '(a': "
            "missing ) at position 2") in lines
    assert any(line.startswith("rules.r2.sql: line 1, col 8: regex_match(): regular expression "
                               "'((a{1000}){1000}){1000}' refused: its counted repetitions")
               for line in lines)


def test_run_refuses_a_data_dir_another_instance_holds_naming_the_buffer(run, tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text(textwrap.dedent(f"""
        data_dir: {tmp_path / "data"}
        mqtt: {{server: "127.0.0.1:1"}}
        connectors: {{kafka_producer: {{k: {{bootstrap_hosts: "127.0.0.1:1"}}}}}}
        actions: {{kafka_producer: {{sink: {{connector: k, parameters: {{
            topic: t, buffer: {{mode: disk}}}}}}}}}}
    """))
    directory = tmp_path / "data" / "kafka_producer" / "sink"
    # the other instance's: a process of its own (one of this process's would be waited for,
    # as a replaced action's is)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from pathlib import Path
            from mqferry import DiskQueue
            q = DiskQueue(Path({str(directory)!r}), segment_bytes=4096)
            print("open", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        result = run("run", "-c", str(f))
    finally:
        holder.kill()
        holder.communicate()
    assert result.exit_code == 1
    assert f"Error: disk buffer {directory}: is in use by process {holder.pid}" in result.output
    assert "two mqferry instances need a data_dir each" in result.output
    assert "Traceback" not in result.output

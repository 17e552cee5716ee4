"""The example plugin of docs/plugins.md, on mqferry.testing's twins; and the doc shows its code."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

import mqferry_example
from mqferry import ConfigError, Status
from mqferry._config import validate_config
from mqferry._rules import evaluate_sql
from mqferry.testing import RecordingDelivery, load_plugins, runtime_context
from mqferry_example.action import JsonLinesAction, JsonLinesConfig
from mqferry_example.source import TickerConfig, TickerSource

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"


def example_plugins():
    return load_plugins(entry_points_=[], extra=[("example", mqferry_example)],
                        warn_missing_builtins=False)


def test_the_guide_shows_the_tested_code_verbatim():
    # every code block that names a file of the example starts with that file's path
    blocks = re.findall(r"```(?:python|toml)\n# (examples/plugin/\S+)\n(.*?)```", DOC.read_text(),
                        re.DOTALL)
    shown = dict(blocks)
    files = {p.relative_to(ROOT).as_posix()
             for p in (ROOT / "examples" / "plugin").rglob("*") if p.suffix in (".py", ".toml")}
    assert set(shown) == files
    for path, body in shown.items():
        assert body == (ROOT / path).read_text(), f"docs/plugins.md shows an old {path}"


def test_the_plugin_registers_its_three_types():
    plugins = example_plugins()
    regs = plugins.registries()
    assert regs.actions.plugin_of("jsonl_file") == "example"
    assert regs.sources.plugin_of("ticker") == "example"
    assert "c_to_f" in plugins.function_table()


def test_the_rule_function_in_sql_and_its_failure():
    table = example_plugins().function_table()
    assert evaluate_sql('SELECT c_to_f(payload.t) AS f FROM "s/#"',
                        {"topic": "s/1", "payload": '{"t": 100}'}, table) == {"f": 212.0}
    with pytest.raises(Exception, match="c_to_f: expected a number, got 'warm'"):
        evaluate_sql('SELECT c_to_f(payload.t) AS f FROM "s/#"',
                     {"topic": "s/1", "payload": '{"t": "warm"}'}, table)


def test_the_config_is_validated_with_the_field_named():
    plugins = example_plugins()
    data = {"actions": {"jsonl_file": {"out": {"parameters": {"path": "x", "max_batch": 0}}}}}
    with pytest.raises(ConfigError, match=r"actions\.jsonl_file\.out\.parameters\.max_batch"):
        validate_config(data, plugins.registries(), plugins.function_table())


async def wait_settled(deliveries, timeout=5.0):
    async with asyncio.timeout(timeout):
        for d in deliveries:
            await d.done.wait()


async def test_the_action_secures_each_output_once_it_is_on_disk(tmp_path):
    path = tmp_path / "out.jsonl"
    action = JsonLinesAction(name="out", config=JsonLinesConfig.model_validate(
        {"parameters": {"path": str(path), "max_batch": 2}}))
    await action.start()
    deliveries = [RecordingDelivery() for _ in range(3)]
    for i, d in enumerate(deliveries):
        action.submit({"i": i}, d)
    await wait_settled(deliveries)
    assert [d.outcome for d in deliveries] == ["secured"] * 3
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"i": 0}, {"i": 1}, {"i": 2}]
    assert (action.metrics.get("matched"), action.metrics.get("success")) == (3, 3)
    assert (await action.health()).status is Status.CONNECTED
    await action.stop()
    await action.stop()  # idempotent
    assert (await action.health()).status is Status.STOPPED


async def test_an_output_that_cannot_be_encoded_fails_alone(tmp_path):
    path = tmp_path / "out.jsonl"
    action = JsonLinesAction(name="out", config=JsonLinesConfig.model_validate(
        {"parameters": {"path": str(path)}}))
    await action.start()
    bad, good = RecordingDelivery(), RecordingDelivery()
    action.submit({"v": object()}, bad)
    action.submit({"v": 1}, good)
    await wait_settled([bad, good])
    await action.stop()
    assert bad.outcome == "failed:failed.encode"
    assert good.outcome == "secured"
    assert action.metrics.get("failed") == 1 and action.metrics.get("success") == 1


async def test_a_write_failure_fails_the_batch_and_shows_in_health(tmp_path):
    action = JsonLinesAction(name="out", config=JsonLinesConfig.model_validate(
        {"parameters": {"path": str(tmp_path)}}))  # a directory: the append fails
    await action.start()
    d = RecordingDelivery()
    action.submit({"v": 1}, d)
    await wait_settled([d])
    health = await action.health()
    await action.stop()
    assert d.outcome == "failed:failed.write"
    assert health.status is Status.DISCONNECTED and str(tmp_path) in health.reason


async def test_stop_never_leaves_a_delivery_pending(tmp_path):
    action = JsonLinesAction(name="out", config=JsonLinesConfig.model_validate(
        {"parameters": {"path": str(tmp_path / "o.jsonl")}}))
    d = RecordingDelivery()
    action.submit({"v": 1}, d)  # never started: nothing writes it
    await action.stop()
    assert d.outcome == "failed:failed.stopped"


async def test_the_source_feeds_numbered_events_to_the_rules():
    events = []
    third = asyncio.Event()

    async def dispatch(event):
        events.append(dict(event))
        if len(events) == 3:
            third.set()

    source = TickerSource(name="clock", config=TickerConfig.model_validate(
        {"parameters": {"interval": "10ms", "count": 3}}), context=runtime_context(
        dispatch=dispatch))
    await source.start()
    await asyncio.wait_for(third.wait(), 5)
    await source.stop()
    assert [e["n"] for e in events] == [1, 2, 3]
    assert {e["event"] for e in events} == {"$bridges/ticker:clock"}
    assert (source.metrics.get("received"), source.metrics.get("success")) == (3, 3)


async def test_a_failing_event_is_counted_and_the_source_goes_on():
    calls = []
    second = asyncio.Event()

    async def dispatch(event):
        calls.append(event["n"])
        if event["n"] == 1:
            raise RuntimeError("a rule blew up")
        second.set()

    source = TickerSource(name="clock", config=TickerConfig.model_validate(
        {"parameters": {"interval": "10ms", "count": 2}}), context=runtime_context(
        dispatch=dispatch))
    await source.start()
    await asyncio.wait_for(second.wait(), 5)
    await source.stop()
    assert calls == [1, 2]
    assert source.metrics.get("failed") == 1 and source.metrics.get("success") == 1

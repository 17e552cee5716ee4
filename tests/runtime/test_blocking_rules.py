"""Rules calling a blocking function (``jq``) are evaluated off the event loop, in order."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest

from mqferry.config import validate_config
from mqferry.plugins import load_plugins
from mqferry.rules.functions import blocking
from mqferry.runtime import App
from mqferry.runtime import rules as runtime_rules
from mqferry.testing import RecordingAction


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


def build(plugins, tmp_path, rules, table=None):
    table = table or plugins.function_table()
    cfg = validate_config({"rules": rules}, plugins.registries(), table)
    app = App(cfg, data_dir=tmp_path)
    app._accepting = True
    acked: list[int] = []
    app.mqtt.acks._send_acks = lambda acks: acked.extend(mid for mid, _ in acks)
    return app, acked


def message(topic, payload, mid):
    return SimpleNamespace(topic=topic, payload=payload, qos=1, mid=mid, retain=False,
                           dup=False, properties=None)


async def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_the_loop_keeps_ticking_while_a_jq_program_runs(plugins, tmp_path):
    app, acked = build(plugins, tmp_path, {
        "slow": {"sql": "SELECT jq('last(range(.n))', payload) as r FROM \"jq/#\""}})
    assert app.rules["slow"].compiled.blocking
    out = RecordingAction()
    app.rules["slow"].actions = [out]
    gaps: list[float] = []
    stop = asyncio.Event()

    async def heartbeat():
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    started = time.monotonic()
    app._on_message(message("jq/1", b'{"n": 3000000}', 1), app.mqtt.acks.open(1, 1))
    assert acked == [] and out.outputs == []  # held while the program runs
    await wait_until(lambda: acked == [1], timeout=60)
    took = time.monotonic() - started
    stop.set()
    await beat
    assert out.outputs == [{"r": [2999999]}]
    assert took > 1.0, "the program must run long enough for the test to mean something"
    assert max(gaps) < 0.25, f"the loop stalled for {max(gaps):.2f}s during {took:.1f}s of jq"


async def test_a_blocking_rule_keeps_the_order_of_its_messages(plugins, tmp_path):
    table = plugins.function_table()
    threads: set[str] = set()

    @blocking
    def slow_echo(value):
        threads.add(threading.current_thread().name)
        time.sleep(0.02 if int(value) % 2 else 0.0)  # odd ones take longer
        return value

    table.add("slow_echo", slow_echo, plugin="test")
    app, acked = build(plugins, tmp_path, {
        "b": {"sql": 'SELECT slow_echo(payload) as v FROM "b/#"'},
        "fast": {"sql": 'SELECT payload as v FROM "b/#"'}}, table)
    slow_out, fast_out = RecordingAction(), RecordingAction()
    app.rules["b"].actions, app.rules["fast"].actions = [slow_out], [fast_out]
    for mid in range(1, 21):
        app._on_message(message("b/1", str(mid).encode(), mid), app.mqtt.acks.open(mid, 1))
    # the non-blocking rule ran at once, on the loop
    assert [o["v"] for o in fast_out.outputs] == [str(i) for i in range(1, 21)]
    assert app.rules["b"].pending > 0
    await wait_until(lambda: len(acked) == 20)
    assert [o["v"] for o in slow_out.outputs] == [str(i) for i in range(1, 21)]
    assert acked == list(range(1, 21))
    assert threads and threading.current_thread().name not in threads
    assert app.rules["b"].pending == 0


async def test_a_blocking_rule_that_fails_fails_that_message_alone(plugins, tmp_path):
    app, acked = build(plugins, tmp_path, {
        "j": {"sql": "SELECT jq('.a', payload) as a FROM \"j/#\""}})
    out = RecordingAction()
    app.rules["j"].actions = [out]
    app._on_message(message("j/1", b"not json", 1), app.mqtt.acks.open(1, 1))
    app._on_message(message("j/1", b'{"a": 2}', 2), app.mqtt.acks.open(2, 1))
    await wait_until(lambda: len(acked) == 2)
    assert acked == [1, 2]
    assert out.outputs == [{"a": [2]}]
    m = app.rules["j"].metrics.snapshot()
    assert (m["matched"], m["passed"], m["failed.exception"]) == (2, 1, 1)


async def test_a_flood_beyond_the_bound_fails_instead_of_growing(plugins, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setattr(runtime_rules, "MAX_PENDING", 3)
    table = plugins.function_table()
    gate = threading.Event()

    @blocking
    def wait_gate(value):
        gate.wait(10)
        return value

    table.add("wait_gate", wait_gate, plugin="test")
    app, _ = build(plugins, tmp_path, {"g": {"sql": 'SELECT wait_gate(payload) as v '
                                                        'FROM "g/#"'}}, table)
    out = RecordingAction()
    app.rules["g"].actions = [out]
    for mid in range(1, 6):  # QoS 0: no PUBACK holds the broker back
        app._on_message(message("g/1", str(mid).encode(), mid), None)
    assert app.rules["g"].pending == 3
    assert app.rules["g"].metrics.get("failed.overloaded") == 2
    gate.set()
    await wait_until(lambda: len(out.outputs) == 3)
    assert [o["v"] for o in out.outputs] == ["1", "2", "3"]


async def test_dispatch_waits_for_a_blocking_rule(plugins, tmp_path):
    table = plugins.function_table()

    @blocking
    def slow_upper(value):
        time.sleep(0.05)
        return value.upper()

    table.add("slow_upper", slow_upper, plugin="test")
    cfg = validate_config({
        "connectors": {"kafka_consumer": {"c": {"bootstrap_hosts": "127.0.0.1:1"}}},
        "sources": {"kafka_consumer": {"src": {"connector": "c", "parameters": {"topic": "k"}}}},
        "rules": {"k": {"sql": 'SELECT slow_upper(value) as v '
                               'FROM "$sources/kafka_consumer:src"'}}},
        plugins.registries(), table)
    app = App(cfg, data_dir=tmp_path)
    out = RecordingAction()
    app.rules["k"].actions = [out]
    future = app.dispatch_nowait({"event": "$bridges/kafka_consumer:src", "value": "v"})
    assert not future.done()
    await asyncio.wait_for(future, 5)
    assert out.outputs == [{"v": "V"}]


def test_the_worker_thread_ends_when_closed_and_comes_back_on_use():
    from mqferry.runtime.rules import OffLoop

    def workers():
        return [t for t in threading.enumerate() if t.name.startswith("mqferry-blocking-rules")]

    before = set(workers())  # other apps' workers, left running by earlier tests
    off = OffLoop()
    assert off.submit(lambda e: e["x"], {"x": 1}).result(5) == 1
    mine = set(workers()) - before
    assert len(mine) == 1
    off.close()
    for t in mine:
        t.join(5)
    assert not any(t.is_alive() for t in mine)
    assert off.submit(lambda e: e["x"], {"x": 2}).result(5) == 2
    off.close()

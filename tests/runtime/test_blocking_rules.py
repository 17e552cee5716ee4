"""Rules calling a blocking function (``jq``, or a pattern only the backtracking engine runs) are
evaluated off the event loop, in order."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mqferry._errors import DeliveryError
from mqferry._plugins import load_plugins
from mqferry._rules.functions import blocking
from mqferry._runtime import rules as runtime_rules
from mqferry.testing import RecordingAction, build_app
from tests.looplag import loop_gaps


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


@pytest.fixture
async def build(plugins, tmp_path):
    """Started apps on MQTT twins: ``build(rules, table=None, **sections)``."""
    started = []

    async def make(rules, table=None, **sections):
        h = build_app({"rules": rules, **sections}, plugins=plugins, data_dir=tmp_path,
                      functions=table)
        await h.start()
        started.append(h)
        return h

    yield make
    for h in started:
        await h.stop()


async def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_the_loop_keeps_ticking_while_a_jq_program_runs(build):
    h = await build({
        "slow": {"sql": "SELECT jq('last(range(.n))', payload) as r FROM \"jq/#\""}})
    assert h.app.rules["slow"].compiled.blocking
    out = RecordingAction()
    h.app.rules["slow"].actions = [out]
    async with loop_gaps() as gaps:
        started = time.monotonic()
        h.mqtt.deliver("jq/1", b'{"n": 3000000}')
        assert h.mqtt.acked == [] and out.outputs == []  # held while the program runs
        await wait_until(lambda: h.mqtt.acked == [1], timeout=60)
        took = time.monotonic() - started
    assert out.outputs == [{"r": [2999999]}]
    assert took > 1.0, "the program must run long enough for the test to mean something"
    gaps.check(0.25)


async def test_a_blocking_rule_keeps_the_order_of_its_messages(build, plugins):
    table = plugins.function_table()
    threads: set[str] = set()

    @blocking
    def slow_echo(value):
        threads.add(threading.current_thread().name)
        time.sleep(0.02 if int(value) % 2 else 0.0)  # odd ones take longer
        return value

    table.add("slow_echo", slow_echo, plugin="test")
    h = await build({
        "b": {"sql": 'SELECT slow_echo(payload) as v FROM "b/#"'},
        "fast": {"sql": 'SELECT payload as v FROM "b/#"'}}, table)
    slow_out, fast_out = RecordingAction(), RecordingAction()
    h.app.rules["b"].actions, h.app.rules["fast"].actions = [slow_out], [fast_out]
    for mid in range(1, 21):
        h.mqtt.deliver("b/1", str(mid).encode())
    # the non-blocking rule ran at once, on the loop
    assert [o["v"] for o in fast_out.outputs] == [str(i) for i in range(1, 21)]
    assert h.app.rules["b"].pending > 0
    await wait_until(lambda: len(h.mqtt.acked) == 20)
    assert [o["v"] for o in slow_out.outputs] == [str(i) for i in range(1, 21)]
    assert h.mqtt.acked == list(range(1, 21))
    assert threads and threading.current_thread().name not in threads
    assert h.app.rules["b"].pending == 0


async def test_a_blocking_rule_that_fails_fails_that_message_alone(build):
    h = await build({
        "j": {"sql": "SELECT jq('.a', payload) as a FROM \"j/#\""}})
    out = RecordingAction()
    h.app.rules["j"].actions = [out]
    h.mqtt.deliver("j/1", b"not json")
    h.mqtt.deliver("j/1", b'{"a": 2}')
    await wait_until(lambda: len(h.mqtt.acked) == 2)
    assert h.mqtt.acked == [1, 2]
    assert out.outputs == [{"a": [2]}]
    m = h.app.rules["j"].metrics.snapshot()
    assert (m["matched"], m["passed"], m["failed.exception"]) == (2, 1, 1)


async def test_a_flood_beyond_the_bound_fails_instead_of_growing(build, plugins,
                                                                 monkeypatch):
    monkeypatch.setattr(runtime_rules, "MAX_PENDING", 3)
    table = plugins.function_table()
    gate = threading.Event()

    @blocking
    def wait_gate(value):
        gate.wait(10)
        return value

    table.add("wait_gate", wait_gate, plugin="test")
    h = await build({"g": {"sql": 'SELECT wait_gate(payload) as v '
                                                        'FROM "g/#"'}}, table)
    out = RecordingAction()
    h.app.rules["g"].actions = [out]
    for mid in range(1, 6):  # QoS 0: no PUBACK holds the broker back
        h.mqtt.deliver("g/1", str(mid).encode(), qos=0)
    assert h.app.rules["g"].pending == 3
    assert h.app.rules["g"].metrics.get("failed.overloaded") == 2
    gate.set()
    await wait_until(lambda: len(out.outputs) == 3)
    assert [o["v"] for o in out.outputs] == ["1", "2", "3"]


#: A Kafka source, never started: the tests dispatch its events themselves.
SOURCE = {
    "connectors": {"kafka_consumer": {"c": {"bootstrap_hosts": "127.0.0.1:1", "enable": False}}},
    "sources": {"kafka_consumer": {"src": {"connector": "c", "enable": False,
                                           "parameters": {"topic": "k"}}}},
}


async def test_a_source_event_the_rule_is_too_far_behind_for_fails(build, plugins,
                                                                    monkeypatch):
    monkeypatch.setattr(runtime_rules, "MAX_PENDING", 1)
    table = plugins.function_table()
    gate = threading.Event()

    @blocking
    def wait_gate(value):
        gate.wait(10)
        return value

    table.add("wait_gate", wait_gate, plugin="test")
    h = await build({"g": {"sql": 'SELECT wait_gate(value) as v '
                                  'FROM "$bridges/kafka_consumer:src"'}}, table, **SOURCE)
    out = RecordingAction()
    h.app.rules["g"].actions = [out]
    first, second = (h.app.dispatch_nowait({"event": "$bridges/kafka_consumer:src",
                                            "value": v}) for v in "12")
    with pytest.raises(DeliveryError) as failed:
        await asyncio.wait_for(second, 5)
    assert failed.value.reason == "failed.rule"
    assert failed.value.detail == (
        "rule g failed on the event (failed.overloaded: OverflowError: 1 events are already "
        "waiting for this rule's evaluation)")
    gate.set()
    await asyncio.wait_for(first, 5)
    assert out.outputs == [{"v": "1"}]


async def test_dispatch_waits_for_a_blocking_rule(plugins, tmp_path):
    table = plugins.function_table()

    @blocking
    def slow_upper(value):
        time.sleep(0.05)
        return value.upper()

    table.add("slow_upper", slow_upper, plugin="test")
    h = build_app({
        "connectors": {"kafka_consumer": {"c": {"bootstrap_hosts": "127.0.0.1:1"}}},
        "sources": {"kafka_consumer": {"src": {"connector": "c", "parameters": {"topic": "k"}}}},
        "rules": {"k": {"sql": 'SELECT slow_upper(value) as v '
                               'FROM "$sources/kafka_consumer:src"'}}},
        plugins=plugins, data_dir=tmp_path, functions=table)
    out = RecordingAction()
    h.wire("k", out)
    future = h.app.dispatch_nowait({"event": "$bridges/kafka_consumer:src", "value": "v"})
    assert not future.done()
    await asyncio.wait_for(future, 5)
    assert out.outputs == [{"v": "V"}]


def test_the_worker_thread_ends_when_closed_and_comes_back_on_use():
    from mqferry._runtime.rules import OffLoop

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


async def test_the_loop_keeps_ticking_while_backtracking_patterns_run(build):
    # 100 ms a call at the time limit: 40 messages held the loop for 4 s when they ran on it
    h = await build({
        "slow": {"sql": "SELECT regex_replace(payload, '(?=a)(a|aa)+b', 'X') as r FROM \"re/#\""},
        "fast": {"sql": "SELECT regex_replace(payload, 'a+b', 'X') as r FROM \"re/#\""}})
    assert h.app.rules["slow"].compiled.blocking
    assert not h.app.rules["fast"].compiled.blocking  # RE2 runs it on the loop
    slow, fast = RecordingAction(), RecordingAction()
    h.app.rules["slow"].actions = [slow]
    h.app.rules["fast"].actions = [fast]
    count = 40
    async with loop_gaps() as gaps:
        started = time.monotonic()
        for _ in range(count):
            h.mqtt.deliver("re/1", b"a" * 40)
        h.mqtt.deliver("re/1", b"aab")
        await wait_until(lambda: len(h.mqtt.acked) == count + 1, timeout=60)
        took = time.monotonic() - started
    assert took > 2.0, "the patterns must run long enough for the test to mean something"
    gaps.check(0.25)
    # every call at the time limit fails its message alone; the last one matches
    m = h.app.rules["slow"].metrics.snapshot()
    assert (m["matched"], m["passed"], m["failed.exception"]) == (count + 1, 1, count)
    assert "exceeded its time limit of 100 ms" in h.app.rules["slow"].last_error.message
    assert slow.outputs == [{"r": "X"}]
    assert fast.outputs[-1] == {"r": "X"} and len(fast.outputs) == count + 1

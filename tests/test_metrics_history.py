"""The in-memory metric history: rings per component, sparse fields, gaps, the span."""

from __future__ import annotations

import asyncio
import tracemalloc
from types import SimpleNamespace

import pytest

from mqferry._metrics import action_metrics
from mqferry._metrics.history import MetricHistory


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _history(components, clock, span=60.0):
    return MetricHistory(lambda: components, interval=5.0, span=span, clock=clock)


def test_samples_are_kept_per_component_oldest_first():
    clock = Clock()
    act = SimpleNamespace(metrics=action_metrics("k:a"))
    components = {"actions": {"k:a": act}, "sources": {}}
    h = _history(components, clock)
    for _ in range(3):
        act.metrics.inc("matched", 10)
        h.sample()
        clock.now += 5
    s = h.series("actions", "k:a")
    assert s["interval"] == 5.0
    assert s["t"] == [1_700_000_000_000, 1_700_000_005_000, 1_700_000_010_000]
    assert s["metrics"]["matched"] == [10, 20, 30]
    assert s["metrics"]["dropped"] == [0, 0, 0]  # zero all along: listed, no ring made
    assert h.series("actions", "k:a", since=1_700_000_005_000)["t"] == [1_700_000_010_000]
    assert h.series("sources", "k:a") == {"interval": 5.0, "t": [], "metrics": {}}


def test_the_span_is_a_ring_and_gaps_read_as_none():
    clock = Clock()
    act = SimpleNamespace(metrics=action_metrics("k:a"))
    running: dict[str, object] = {"k:a": act}
    h = _history({"actions": running}, clock, span=20.0)  # 4 samples
    for i in range(6):
        if i == 4:
            running.clear()  # replaced or disabled for one sample
        elif i == 5:
            running["k:a"] = act
        act.metrics.inc("success")
        h.sample()
        clock.now += 5
    s = h.series("actions", "k:a")
    assert len(s["t"]) == 4
    assert s["metrics"]["success"] == [3, 4, None, 6]
    # Gone for a whole span: forgotten.
    running.clear()
    for _ in range(4):
        h.sample()
    assert not h.tracked("actions", "k:a")


def test_a_dropped_gauge_reads_zero_afterwards():
    clock = Clock()
    act = SimpleNamespace(metrics=action_metrics("k:a"))
    act.metrics.gauge("lag", lambda: 7)
    h = _history({"actions": {"k:a": act}}, clock)
    h.sample()
    act.metrics.drop_gauge("lag")
    h.sample()
    assert h.series("actions", "k:a")["metrics"]["lag"] == [7, 0]


def test_an_hour_of_an_idle_and_of_a_busy_action_costs_little_memory():
    clock = Clock()
    idle = {f"k:i{i}": SimpleNamespace(metrics=action_metrics(f"k:i{i}")) for i in range(100)}
    h = _history({"actions": idle}, clock, span=3600.0)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(720):
        h.sample()
    idle_bytes = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # 100 idle actions for an hour: their presence maps only (720 bytes each), no rings.
    assert idle_bytes < 100 * 4096, idle_bytes


async def test_the_task_samples_until_stopped():
    act = SimpleNamespace(metrics=action_metrics("k:a"))
    h = MetricHistory(lambda: {"actions": {"k:a": act}}, interval=0.01, span=1.0)
    h.start()
    # Until three samples are in (a busy machine may take longer than 3 intervals for that).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    for _ in range(500):
        if len(h.series("actions", "k:a")["t"]) >= 3 or loop.time() > deadline:
            break
        await asyncio.sleep(0.01)
    await h.stop()
    taken = len(h.series("actions", "k:a")["t"])
    assert taken >= 3
    await asyncio.sleep(0.05)
    assert len(h.series("actions", "k:a")["t"]) == taken


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="interval"):
        MetricHistory(dict, interval=0)

"""Shutdown with slow-closing twins: sources stop together, then actions together, so the time
to stop is the slowest source's stop plus the slowest action's, never the sum of all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

from mqferry import ActionType, HealthStatus, SourceType, Status, hookimpl
from mqferry._config import ActionConfigBase, SourceConfigBase, Strict
from mqferry._metrics import action_metrics, source_metrics
from mqferry._plugins import load_plugins
from mqferry.testing import build_app

SOURCE_STOP = 0.4
ACTION_STOP = 0.6


class SlowParameters(Strict):
    stop_s: float = 0.0


class SlowSourceConfig(SourceConfigBase):
    parameters: SlowParameters = SlowParameters()


class SlowActionConfig(ActionConfigBase):
    parameters: SlowParameters = SlowParameters()


class _Slow:
    #: (id, "start" or "end" of its stop, monotonic time)
    log: ClassVar[list[tuple[str, str, float]]] = []

    def __init__(self, cid: str, params: SlowParameters, metrics: Any) -> None:
        self.id, self.params, self.metrics = cid, params, metrics

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.log.append((self.id, "start", time.monotonic()))
        await asyncio.sleep(self.params.stop_s)  # a client closing against a frozen broker
        self.log.append((self.id, "end", time.monotonic()))

    async def health(self) -> HealthStatus:
        return HealthStatus(Status.CONNECTED)

    def submit(self, output: Mapping[str, Any], delivery: Any) -> None:
        delivery.secured()


class SlowPlugin:
    @hookimpl
    def mqferry_register_source_types(self, register: Any) -> None:
        register.add(SourceType("slow", SlowSourceConfig, lambda name, cfg, conn, ctx: _Slow(
            f"slow:{name}", cfg.parameters, source_metrics(f"slow:{name}"))))

    @hookimpl
    def mqferry_register_action_types(self, register: Any) -> None:
        register.add(ActionType("slow", SlowActionConfig, lambda name, cfg, conn, ctx: _Slow(
            f"slow:{name}", cfg.parameters, action_metrics(f"slow:{name}"))))


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("slow", SlowPlugin())])


async def test_shutdown_takes_the_slowest_source_plus_the_slowest_action(plugins, tmp_path):
    source = {"parameters": {"stop_s": SOURCE_STOP}}
    action = {"parameters": {"stop_s": ACTION_STOP}}
    data = {"sources": {"slow": {"s1": source, "s2": source}},
            "actions": {"slow": {"a1": action, "a2": action, "a3": action}},
            "rules": {"r": {"sql": 'SELECT * FROM "t/#"',
                            "actions": ["slow:a1", "slow:a2", "slow:a3"]}}}
    harness = build_app(data, plugins=plugins, data_dir=tmp_path)
    await harness.start()
    _Slow.log.clear()
    began = time.monotonic()
    await harness.stop()
    took = time.monotonic() - began
    # one after the other would be 2 * 0.4 + 3 * 0.6 = 2.6 s
    assert SOURCE_STOP + ACTION_STOP <= took < SOURCE_STOP + ACTION_STOP + 0.5, took
    ends = {cid: t for cid, what, t in _Slow.log if what == "end"}
    starts = {cid: t for cid, what, t in _Slow.log if what == "start"}
    assert set(ends) == {"slow:s1", "slow:s2", "slow:a1", "slow:a2", "slow:a3"}
    # every source has stopped taking records and settled before any action drains
    assert max(ends["slow:s1"], ends["slow:s2"]) <= min(
        starts[f"slow:a{i}"] for i in (1, 2, 3))

"""Reconfiguration around components whose stop() raises or hangs (in-memory twins)."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import pytest

from mqferry import ActionType, HealthStatus, SourceType, Status, hookimpl
from mqferry._config import ActionConfigBase, SourceConfigBase, Strict
from mqferry._metrics import action_metrics, source_metrics
from mqferry._plugins import load_plugins
from mqferry._runtime.reconfig import Controller
from mqferry._runtime.reconfig import apply as reconfig_apply
from mqferry.testing import AppHarness, build_app

Behaviour = Literal["ok", "raise", "hang", "hang_hard"]


class FaultyParameters(Strict):
    #: what stop() does: return, raise, hang until cancelled, or hang ignoring cancellation
    on_stop: Behaviour = "ok"
    on_start: Behaviour = "ok"
    label: str = ""


class FaultySourceConfig(SourceConfigBase):
    parameters: FaultyParameters = FaultyParameters()


class FaultyActionConfig(ActionConfigBase):
    parameters: FaultyParameters = FaultyParameters()


class _Faulty:
    instances: ClassVar[list[_Faulty]] = []
    stop_timeout = 0.2  # its own flush bound, as an action with a flush timeout declares

    def __init__(self, cid: str, params: FaultyParameters, metrics: Any) -> None:
        self.id = cid
        self.params = params
        self.metrics = metrics
        self.state = "built"
        self.outputs: list[dict[str, Any]] = []
        self.instances.append(self)

    async def _behave(self, how: Behaviour, what: str) -> None:
        if how == "raise":
            raise RuntimeError(f"{what} exploded")
        if how == "hang":
            await asyncio.Event().wait()
        if how == "hang_hard":
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:  # deaf to cancellation, like a stuck client
                try:
                    await asyncio.sleep(0.05)
                except asyncio.CancelledError:
                    continue

    async def start(self) -> None:
        self.state = "starting"
        await self._behave(self.params.on_start, "start")
        self.state = "running"

    async def stop(self) -> None:
        self.state = "stopping"
        await self._behave(self.params.on_stop, "stop")
        self.state = "stopped"

    async def health(self) -> HealthStatus:
        return HealthStatus(Status.CONNECTED if self.state == "running" else Status.STOPPED)

    def submit(self, output: Mapping[str, Any], delivery: Any) -> None:
        self.outputs.append(dict(output))
        delivery.secured()


class FaultyPlugin:
    @hookimpl
    def mqferry_register_source_types(self, register: Any) -> None:
        register.add(SourceType(
            "faulty", FaultySourceConfig,
            lambda name, cfg, conn, ctx: _Faulty(f"faulty:{name}", cfg.parameters,
                                                 source_metrics(f"faulty:{name}"))))

    @hookimpl
    def mqferry_register_action_types(self, register: Any) -> None:
        register.add(ActionType(
            "faulty", FaultyActionConfig,
            lambda name, cfg, conn, ctx: _Faulty(f"faulty:{name}", cfg.parameters,
                                                 action_metrics(f"faulty:{name}"))))


CONFIG: dict[str, Any] = {
    "sources": {"faulty": {"src": {"parameters": {}}}},
    "actions": {"faulty": {"act": {"parameters": {}}}},
    "rules": {"r": {"sql": 'SELECT payload FROM "f/#"', "actions": ["faulty:act"]}},
}


@pytest.fixture(scope="module")
def plugins():
    return load_plugins(extra=[("faulty", FaultyPlugin())])


@pytest.fixture
async def running(plugins, tmp_path, monkeypatch):
    # the margin after a component's own flush bound; the default (seconds) is for real clients
    monkeypatch.setattr(reconfig_apply, "STOP_MARGIN", 0.1)
    _Faulty.instances.clear()
    started: list[AppHarness] = []

    async def make(on_stop: Behaviour, kind: str = "sources", name: str = "src"):
        data = copy.deepcopy(CONFIG)
        data[kind]["faulty"][name]["parameters"] = {"on_stop": on_stop}
        harness = build_app(data, plugins=plugins, data_dir=tmp_path)
        await harness.start()
        started.append(harness)
        return harness.app, Controller(harness.app, plugins, data=data)

    yield make
    for harness in started:
        await harness.stop()


def relabel(kind: str, name: str, label: str):
    def mutate(data: dict[str, Any]) -> None:
        data[kind]["faulty"][name]["parameters"] = {"label": label}
    return mutate


@pytest.mark.parametrize("on_stop", ["raise", "hang", "hang_hard"])
async def test_a_source_whose_stop_fails_is_still_replaced_and_reported(running, on_stop):
    app, ctrl = await running(on_stop)
    old = app.sources["faulty:src"]
    began = time.monotonic()
    plan = await asyncio.wait_for(ctrl.change(relabel("sources", "src", "v2")), 5)
    took = time.monotonic() - began
    new = app.sources["faulty:src"]
    assert new is not old and new.params.label == "v2" and new.state == "running"
    assert (await app.status())["faulty:src"].status is Status.CONNECTED
    reason = plan.failed["faulty:src"]
    assert plan.to_json()["failed"] == {"faulty:src": reason}
    if on_stop == "raise":
        assert reason == "stop failed: RuntimeError('stop exploded')"
    else:
        assert reason == "stop did not finish within 0.3s"  # its own 0.2 s + the 0.1 s margin
        assert took < 1.0  # bounded, even for a stop deaf to cancellation
    assert ctrl.data["sources"]["faulty"]["src"]["parameters"] == {"label": "v2"}
    # the lock is free: the next change goes through at once
    plan2 = await asyncio.wait_for(ctrl.change(relabel("sources", "src", "v3")), 5)
    assert plan2.failed == {} and app.sources["faulty:src"].params.label == "v3"


async def test_an_action_whose_stop_raises_is_replaced_and_rules_reach_the_new_one(running):
    app, ctrl = await running("raise", kind="actions", name="act")
    old = app.actions["faulty:act"]
    plan = await ctrl.change(relabel("actions", "act", "v2"))
    new = app.actions["faulty:act"]
    assert plan.failed == {"faulty:act": "stop failed: RuntimeError('stop exploded')"}
    assert new is not old and new.state == "running"
    assert app.rules["r"].actions == [new]


async def test_a_start_that_raises_is_reported_and_the_component_stays_visible(running):
    app, ctrl = await running("ok")

    def broken_start(data: dict[str, Any]) -> None:
        data["sources"]["faulty"]["src"]["parameters"] = {"on_start": "raise"}

    plan = await ctrl.change(broken_start)
    assert plan.failed == {"faulty:src": "start failed: RuntimeError('start exploded')"}
    assert (await app.status())["faulty:src"].status is Status.STOPPED
    # and a later change replaces it
    plan = await ctrl.change(relabel("sources", "src", "fixed"))
    assert plan.failed == {} and app.sources["faulty:src"].state == "running"


async def test_stopping_the_app_goes_on_past_a_stop_that_raises(running, caplog):
    app, _ = await running("raise")
    action = app.actions["faulty:act"]
    await app.stop()
    assert app.sources["faulty:src"].state == "stopping"  # it raised half-way
    assert action.state == "stopped"  # and the action was stopped all the same
    assert "faulty:src: stop failed" in caplog.text

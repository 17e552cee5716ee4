"""A plugin component built without ``mqferry.Metrics`` is refused by name, at build time."""

from __future__ import annotations

from typing import Any

import pytest

from mqferry import ActionType, HealthStatus, Metrics, PluginError, Status, hookimpl
from mqferry._config import ActionConfigBase
from mqferry._plugins import load_plugins
from mqferry.testing import build_app


class _OwnMetrics:
    component_id = "odd:a"

    def inc(self, name: str, n: int = 1) -> None:
        pass


class _Action:
    def __init__(self, metrics: Any) -> None:
        self.id = "odd:a"
        self.metrics = metrics
        self.outputs: list[Any] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def health(self) -> HealthStatus:
        return HealthStatus(Status.CONNECTED)

    def submit(self, output: Any, delivery: Any) -> None:
        self.outputs.append(dict(output))
        delivery.secured()


class _SubMetrics(Metrics):
    pass


def _plugin(metrics: Any) -> Any:
    class Plugin:
        @hookimpl
        def mqferry_register_action_types(self, register: Any) -> None:
            register.add(ActionType("odd", ActionConfigBase,
                                    lambda name, cfg, conn, ctx: _Action(metrics)))
    return load_plugins(extra=[("odd", Plugin())])


CONFIG = {"actions": {"odd": {"a": {}}},
          "rules": {"r": {"sql": 'SELECT payload FROM "o/#"', "actions": ["odd:a"]}}}


def test_an_action_without_mqferry_metrics_is_refused_naming_it(tmp_path):
    with pytest.raises(PluginError, match=r"odd:a: the odd type .* _OwnMetrics, not mqferry"):
        build_app(CONFIG, plugins=_plugin(_OwnMetrics()), data_dir=tmp_path)


async def test_an_action_with_a_metrics_subclass_runs(tmp_path):
    harness = build_app(CONFIG, plugins=_plugin(_SubMetrics("odd:a")), data_dir=tmp_path)
    async with harness:
        mid = harness.mqtt.deliver("o/1", b"hi")
        action = harness.app.actions["odd:a"]
        assert action.outputs == [{"payload": "hi"}]
        assert mid in harness.mqtt.acked
        assert harness.app.rules["r"].metrics.get("actions.success") == 1


async def test_a_message_with_a_bytearray_payload_reaches_the_rules(tmp_path):
    harness = build_app(CONFIG, plugins=_plugin(_SubMetrics("odd:a")), data_dir=tmp_path)
    async with harness:
        harness.mqtt.deliver("o/1", bytearray(b"hi"))
        assert harness.app.actions["odd:a"].outputs == [{"payload": "hi"}]

"""A change whose subscriptions the broker does not take: applied, persisted and reported."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from mqferry._plugins import load_plugins
from mqferry._runtime.reconfig import Controller
from mqferry.testing import build_app

CONFIG: dict[str, Any] = {"rules": {"r": {"sql": 'SELECT payload FROM "t/#"', "actions": []}}}


class Refusing:
    """Makes the twin session's subscribing fail, as a broker that hangs or drops it."""

    def __init__(self, mqtt: Any) -> None:
        self.mqtt = mqtt
        self.calls = 0
        self._set = mqtt.set_subscriptions

    async def __call__(self, filters: Any) -> None:
        self.calls += 1
        await self._set(filters)  # the session keeps the filters, for its next connection
        raise TimeoutError("no SUBACK within 5s")


@pytest.fixture
async def running(tmp_path):
    path = tmp_path / "mqferry.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    plugins = load_plugins()
    harness = build_app(CONFIG, plugins=plugins, data_dir=tmp_path)
    await harness.start()
    ctrl = Controller(harness.app, plugins, path=path, data=CONFIG)
    refusing = Refusing(harness.mqtt)
    harness.mqtt.set_subscriptions = refusing
    yield harness, ctrl, path, refusing
    await harness.stop()


async def test_a_rule_change_is_in_force_and_written_when_subscribing_fails(running):
    harness, ctrl, path, refusing = running

    def edit(rule: dict[str, Any] | None) -> dict[str, Any]:
        assert rule is not None
        return {**rule, "sql": 'SELECT payload FROM "u/#"'}

    plan = await ctrl.change_rule("r", edit)
    assert refusing.calls == 1
    assert plan.failed["mqtt"].startswith("subscribing failed: TimeoutError('no SUBACK")
    # what runs, what the session subscribes to next and what the file says agree
    assert harness.app.rules["r"].compiled.topic_filters == ("u/#",)
    assert harness.mqtt.subscriptions == {"u/#"}
    await ctrl.flush()
    assert yaml.safe_load(path.read_text())["rules"]["r"]["sql"] == 'SELECT payload FROM "u/#"'


async def test_a_config_change_is_in_force_when_subscribing_fails(running):
    harness, ctrl, _, _ = running

    def add_rule(data: dict[str, Any]) -> None:
        data["rules"]["s"] = {"sql": 'SELECT payload FROM "v/1"', "actions": []}
        data["rules"]["r"]["enable"] = False

    plan = await ctrl.change(add_rule)
    assert "mqtt" in plan.failed
    assert set(harness.app.rules) == {"s"}
    assert harness.mqtt.subscriptions == {"v/1"}

"""Live reconfiguration with in-memory twins: only what changed is touched, nothing held is lost."""

from __future__ import annotations

import copy

import pytest

from mqferry._config import validate_config
from mqferry._runtime.reconfig import Controller, plan_changes
from mqferry.testing import build_app
from tests.api.fakes import FakeAction, fake_plugins, reset_fakes

CONFIG = {
    "connectors": {"fake": {"c1": {"url": "fake://one"}}},
    "actions": {"fake": {"hold": {"connector": "c1", "parameters": {"topic": "h", "hold": True}},
                         "other": {"connector": "c1", "parameters": {"topic": "o"}}}},
    "rules": {"held": {"sql": 'SELECT payload FROM "h/#"', "actions": ["fake:hold"]},
              "other": {"sql": 'SELECT payload FROM "o/#"', "actions": ["fake:other"]}},
}


@pytest.fixture(scope="module")
def plugins():
    return fake_plugins()


@pytest.fixture
async def setup(plugins, tmp_path):
    """A started app on an MQTT twin, its controller, and the packet ids it acknowledged."""
    reset_fakes()
    h = build_app(CONFIG, plugins=plugins, data_dir=tmp_path)
    await h.start()
    yield h.app, Controller(h.app, plugins, data=copy.deepcopy(CONFIG)), h.mqtt.acked
    await h.stop()


def send(app, mid, topic, payload=b"x"):
    """Deliver a QoS 1 message; the twin numbers them 1, 2, ... as the test does."""
    assert app.mqtt.deliver(topic, payload) == mid


async def test_changing_an_action_flushes_what_it_holds_and_spares_the_rest(setup):
    app, ctrl, acked = setup
    other, mqtt = app.actions["fake:other"], app.mqtt
    for mid in (1, 2, 3):
        send(app, mid, "h/1")
    send(app, 4, "o/1")
    assert acked == []  # the held action has not secured 1..3, so 4 waits too (ordered acks)

    def retopic(data):
        data["actions"]["fake"]["hold"]["parameters"] = {"topic": "h2", "hold": False}

    plan = await ctrl.change(retopic)
    assert plan.start["actions"] == ["fake:hold"]
    assert plan.stop["actions"] == ["fake:hold"]
    assert plan.start["connectors"] == []
    assert acked == [1, 2, 3, 4]  # the replaced action flushed on stop: nothing lost
    assert app.actions["fake:other"] is other  # untouched
    assert app.mqtt is mqtt
    send(app, 5, "h/1")
    assert acked[-1] == 5
    assert [(t, i) for i, t, _ in FakeAction.received] == [
        ("h", "fake:hold"), ("h", "fake:hold"), ("h", "fake:hold"), ("o", "fake:other"),
        ("h2", "fake:hold")]


async def test_rules_keep_counters_and_subscriptions_follow_enabled_rules(setup):
    app, ctrl, _ = setup
    other_rule = app.rules["other"]
    send(app, 1, "h/1")

    def edit(data):
        data["rules"]["held"]["sql"] = 'SELECT payload FROM "h2/#"'
        data["rules"]["other"]["enable"] = False
        data["rules"]["new"] = {"sql": 'SELECT * FROM "n/#"'}

    plan = await ctrl.change(edit)
    assert plan.rules_changed == ["held", "new", "other"]
    assert plan.subscriptions == (["h2/#", "n/#"], ["h/#", "o/#"])
    assert app.topic_filters == {"h2/#", "n/#"}
    assert app.mqtt.subscriptions == {"h2/#", "n/#"}
    assert app.rules["held"].metrics.get("matched") == 1
    assert "other" not in app.rules

    def enable(data):
        data["rules"]["other"]["enable"] = True

    await ctrl.change(enable)
    assert app.rules["other"] is not other_rule
    assert "o/#" in app.topic_filters


async def test_invalid_or_failing_changes_apply_nothing(setup, plugins):
    app, ctrl, _ = setup
    before = (dict(app.actions), dict(app.rules), app.topic_filters)

    def bad(data):
        data["rules"]["held"]["sql"] = "SELECT"

    with pytest.raises(Exception, match=r"rules\.held\.sql"):
        await ctrl.change(bad)
    assert (dict(app.actions), dict(app.rules), app.topic_filters) == before
    assert ctrl.data == CONFIG

    # A factory that raises leaves the running app as it was.
    data = copy.deepcopy(CONFIG)
    data["actions"]["fake"]["other"]["parameters"]["topic"] = "changed"
    new = validate_config(data, plugins.registries(), plugins.function_table())
    spec = new.actions["fake:other"]
    boom = type(spec.type)(spec.type.name, spec.type.config_model,
                           lambda *a: (_ for _ in ()).throw(RuntimeError("boom")),
                           connector_type="fake")
    new.actions["fake:other"] = type(spec)(spec.id, boom, spec.name, spec.config)
    with pytest.raises(RuntimeError, match="boom"):
        await app.reconfigure(new)
    assert (dict(app.actions), dict(app.rules), app.topic_filters) == before


async def test_sections_that_need_a_restart_are_reported(setup, plugins):
    app, _, _ = setup
    data = copy.deepcopy(CONFIG)
    data["mqtt"] = {"clientid": "another"}
    new = validate_config(data, plugins.registries(), plugins.function_table())
    assert plan_changes(app, new).restart_needed == ["mqtt"]
    mqtt = app.mqtt
    await app.reconfigure(new)
    assert app.mqtt is mqtt
    assert app.mqtt.config.clientid == "mqferry"  # the session is not changed live
    # changed back: what runs is what the file says again, so no restart is needed
    back = validate_config(copy.deepcopy(CONFIG), plugins.registries(), plugins.function_table())
    assert plan_changes(app, back).restart_needed == []


async def test_connector_change_rebuilds_its_actions_only(setup):
    app, ctrl, _ = setup
    conn = app.connectors["fake:c1"]

    def edit(data):
        data["connectors"]["fake"]["c1"]["url"] = "fake://two"

    plan = await ctrl.change(edit)
    assert plan.start["connectors"] == ["fake:c1"]
    assert plan.start["actions"] == ["fake:hold", "fake:other"]
    assert app.connectors["fake:c1"] is not conn
    assert app.actions["fake:other"].connector is app.connectors["fake:c1"]
    assert (await ctrl.change(lambda d: None)).empty


async def test_an_action_that_cannot_flush_makes_the_broker_redeliver(plugins, tmp_path):
    data = copy.deepcopy(CONFIG)
    data["mqtt"] = {"server": "127.0.0.1:1"}
    data["actions"]["fake"]["hold"]["parameters"]["strand"] = True
    h = build_app(data, plugins=plugins, data_dir=tmp_path)
    await h.start()
    app = h.app
    ctrl = Controller(app, plugins, data=copy.deepcopy(data))
    send(app, 1, "h/1")
    send(app, 2, "o/1")
    assert len(app.mqtt.acks) == 2  # 1 is held, so 2 waits behind it
    generation = app.mqtt.acks.generation

    def edit(d):
        d["actions"]["fake"]["hold"]["parameters"]["topic"] = "new"

    try:
        plan = await ctrl.change(edit)
        assert plan.mqtt_reconnected
        assert len(app.mqtt.acks) == 0
        assert app.mqtt.acks.generation == generation + 1
        assert h.mqtt.acked == []  # acknowledged to no session: the broker redelivers
    finally:
        await app.mqtt.stop()
    plain = await ctrl.change(lambda d: d["rules"]["other"].update(description="x"))
    assert not plain.mqtt_reconnected
    await h.stop()


async def test_a_replaced_dead_letter_action_is_used_under_its_id(plugins, tmp_path):
    data = copy.deepcopy(CONFIG)
    data["mqtt"] = {"dead_letter": {"action": "fake:other"}}
    data["rules"]["held"]["sql"] = 'SELECT payload.x as x FROM "h/#"'
    reset_fakes()
    h = build_app(data, plugins=plugins, data_dir=tmp_path)
    await h.start()
    app = h.app
    ctrl = Controller(app, plugins, data=copy.deepcopy(data))

    def retopic(d):
        d["actions"]["fake"]["other"]["parameters"] = {"topic": "dead"}

    plan = await ctrl.change(retopic)
    assert plan.start["actions"] == ["fake:other"]
    send(app, 1, "h/1", b"not json")
    dead = [out for _, topic, out in FakeAction.received if topic == "dead"]
    assert len(dead) == 1
    assert (dead[0]["reason"], dead[0]["rule_id"]) == ("failed.exception", "held")
    await h.stop()


async def test_a_rebuilt_action_keeps_its_counters_until_a_reset(setup):
    app, ctrl, _ = setup
    for mid in (1, 2):
        send(app, mid, "o/1")
    old = app.actions["fake:other"]
    old.metrics.inc("failed.too_large")  # the evidence an operator looks for

    def retopic(data):
        data["actions"]["fake"]["other"]["parameters"] = {"topic": "o2"}

    plan = await ctrl.change(retopic)
    assert plan.start["actions"] == ["fake:other"]
    new = app.actions["fake:other"]
    assert new is not old
    assert (new.metrics.get("matched"), new.metrics.get("success"),
            new.metrics.get("failed.too_large")) == (2, 2, 1)
    assert new.metrics.started_at == old.metrics.started_at
    send(app, 3, "o/1")
    assert new.metrics.get("matched") == 3
    snap = new.metrics.snapshot()
    assert snap["queuing"] == 0  # the gauges are the new action's own
    new.metrics.reset()
    assert new.metrics.get("matched") == 0 and new.metrics.get("failed.too_large") == 0

"""The app's background loops under supervision, with failures injected through twins.

A loop that dies is logged under its task name, restarted with back-off, and reported as a
problem of its owner (``/status`` lists it; the MQTT session's health says so for the acks)
instead of dying silently.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from mqferry._config import validate_config
from mqferry._metrics import action_metrics
from mqferry._plugins import load_plugins
from mqferry._runtime import App
from mqferry._runtime.delivery import Ticket
from mqferry.testing import RecordingAction


@pytest.fixture(scope="module")
def plugins():
    return load_plugins()


def build(plugins, tmp_path, **mqtt):
    data = {"mqtt": mqtt, "rules": {"a": {"sql": 'SELECT * FROM "t/#"'}}}
    cfg = validate_config(data, plugins.registries(), plugins.function_table())
    return App(cfg, data_dir=tmp_path)


class _BrokenTick:
    """Metrics whose per-second tick raises: the injected failure of the metrics loop."""

    def __init__(self, cid):
        self._inner = action_metrics(cid)
        self.ticks = 0

    def tick(self):
        self.ticks += 1
        raise ZeroDivisionError("injected: tick")

    def __getattr__(self, name):
        return getattr(self._inner, name)


class _PoisonTicket(Ticket):
    """A message's ticket whose release raises: the injected failure of the ack-wait loop."""

    def release(self):
        super().release()
        raise RuntimeError("injected: release")


async def _until(check, timeout=5.0):
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_a_dying_metrics_loop_is_logged_restarted_and_shown(plugins, tmp_path, caplog):
    app = build(plugins, tmp_path)
    broken = RecordingAction("recording:broken")
    broken.metrics = _BrokenTick("recording:broken")
    app.actions[broken.id] = broken
    assert app.task_problems() == []
    with caplog.at_level(logging.ERROR, logger="mqferry._tasks"):
        app.tasks.start()
        try:
            await _until(lambda: broken.metrics.ticks >= 2)  # died, and was started again
        finally:
            await app.tasks.stop()
    assert app.task_problems() == []  # stopped: no loop runs, nothing to report
    logged = [r.getMessage() for r in caplog.records]
    assert any("mqferry[metrics].tick" in m and "injected: tick" in m for m in logged)


async def test_the_problem_names_the_task_the_owner_and_the_reason(plugins, tmp_path):
    app = build(plugins, tmp_path)
    broken = RecordingAction("recording:broken")
    broken.metrics = _BrokenTick("recording:broken")
    app.actions[broken.id] = broken
    app.tasks.start()
    try:
        await _until(lambda: bool(app.task_problems()))
        [problem] = app.task_problems()
        assert problem["task"] == "mqferry[metrics].tick" and problem["owner"] == "metrics"
        assert "ZeroDivisionError('injected: tick')" in problem["reason"]
    finally:
        await app.tasks.stop()


async def test_a_dying_ack_wait_loop_marks_the_mqtt_session_and_keeps_releasing(plugins,
                                                                                tmp_path):
    app = build(plugins, tmp_path, delivery="at_most_once")
    sync = RecordingAction("recording:sync", hold=True)
    sync.ack_wait = 0.05  # the PUBACK waits at most 50 ms for this action
    app.rules["a"].actions = [sync]
    acked: list[int] = []
    app.mqtt.acks = type(app.mqtt.acks)(lambda acks: acked.extend(m for m, _ in acks))
    app.inbound.accepting = True
    app.handle_message(_message(1), _PoisonTicket(None, 1, 1, 0))
    app.handle_message(_message(2), app.mqtt.acks.open(2, 1))
    app.tasks.start()
    try:
        # the loop died on the first message's release; restarted, it released the second
        await _until(lambda: acked == [2])
        problems = app.task_problems()
        assert [(p["task"], p["owner"]) for p in problems] == [("mqferry[acks].wait", "mqtt")]
        assert "RuntimeError('injected: release')" in problems[0]["reason"]
    finally:
        await app.tasks.stop()


def _message(mid):
    return SimpleNamespace(topic="t/1", payload=b"x", qos=1, mid=mid, retain=False, dup=False,
                           properties=None, routes=())

"""SIGINT/SIGTERM: the first stops gracefully, the next one at once (``mqferry run``).

In-process, with real signals and a twin of the app whose stop waits until the test lets it; the
process is not ended (``abort`` is injected). ``mqferry run`` against the real brokers, and what
comes back after the stop at once: tests/integration/test_stop_signals.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from types import SimpleNamespace

from mqferry._runtime.run import (
    ABANDONED,
    AT_MOST_ONCE_LOST,
    NOTHING_LOST,
    StopSignals,
    abandoned,
    run_app,
)
from mqferry.testing import wait_until


class Holding(SimpleNamespace):
    """An action whose metrics say it holds ``queued`` records and ``inflight`` in flight."""

    def __init__(self, queued: int, inflight: int) -> None:
        snap = {"queuing": queued, "inflight": inflight, "success": 7}
        super().__init__(metrics=SimpleNamespace(snapshot=lambda: snap))


class SlowStopApp(SimpleNamespace):
    """What :func:`run_app` uses of an app; :meth:`stop` waits for :attr:`release`."""

    def __init__(self, delivery: str = "at_least_once", **held: tuple[int, int]) -> None:
        actions = {aid: Holding(*counts) for aid, counts in held.items()}
        config = SimpleNamespace(raw=SimpleNamespace(mqtt=SimpleNamespace(delivery=delivery)))
        super().__init__(rules={}, actions=actions, sources={}, topic_filters=set(),
                         cluster=None, config=config)
        self.stopping = asyncio.Event()
        self.release = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopping.set()
        await self.release.wait()


async def test_a_second_signal_during_a_slow_stop_aborts_with_128_plus_its_number(caplog):
    app, aborted = SlowStopApp(**{"kafka_producer:sink": (1200, 300)}), []
    with caplog.at_level(logging.INFO, logger="mqferry._runtime.run"):
        run = asyncio.create_task(run_app(app, abort=aborted.append))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(app.stopping.wait(), 5)
        assert aborted == []
        os.kill(os.getpid(), signal.SIGINT)
        await wait_until(lambda: aborted)
        app.release.set()
        await asyncio.wait_for(run, 5)
    assert aborted == [130]
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("INFO", "SIGTERM: stopping gracefully (actions flush, sources commit); send SIGINT "
                    "or SIGTERM again to stop at once") in lines
    assert ("WARNING", "SIGINT again: stopping at once, abandoning the graceful stop (exit code "
                       f"130): {ABANDONED} (kafka_producer:sink holds 1,200 queued and 300 in "
                       f"flight); {NOTHING_LOST}") in lines


async def test_the_first_signal_only_stops_gracefully():
    stop, aborted = asyncio.Event(), []
    on_signal = StopSignals(stop, aborted.append)
    on_signal(signal.SIGTERM)
    assert stop.is_set() and aborted == []
    on_signal(signal.SIGTERM)
    assert aborted == [143]



def test_what_is_abandoned_names_the_records_held_and_the_delivery_s_loss():
    app = SlowStopApp("at_most_once", **{"kafka_producer:b": (5, 0), "kafka_producer:a": (0, 0),
                                         "republish:r": (0, 2)})
    assert abandoned(app) == (  # type: ignore[arg-type]
        f"{ABANDONED} (kafka_producer:b holds 5 queued and 0 in flight; republish:r holds 0 "
        f"queued and 2 in flight); {AT_MOST_ONCE_LOST}")
    assert "lost" in AT_MOST_ONCE_LOST and "nothing is lost" in NOTHING_LOST
    assert abandoned(SlowStopApp()) == (  # type: ignore[arg-type]
        f"{ABANDONED} (no action holds records); {NOTHING_LOST}")


async def test_an_unreadable_state_still_aborts(caplog):
    stop, aborted = asyncio.Event(), []

    def broken() -> str:
        raise RuntimeError("gone")
    on_signal = StopSignals(stop, aborted.append, broken)
    with caplog.at_level(logging.WARNING, logger="mqferry._runtime.run"):
        on_signal(signal.SIGINT)
        on_signal(signal.SIGINT)
    assert aborted == [130]
    assert f"{ABANDONED} (what they hold could not be read: RuntimeError('gone'))" in caplog.text


async def test_the_start_line_names_twenty_subscriptions_and_counts_the_rest(caplog):
    app = SlowStopApp()
    app.topic_filters = {f"t/{i:03d}" for i in range(100)}
    app.release.set()
    stop = asyncio.Event()
    stop.set()
    with caplog.at_level(logging.INFO, logger="mqferry._runtime.run"):
        await run_app(app, stop=stop)  # type: ignore[arg-type]
    [line] = [r.getMessage() for r in caplog.records if "mqferry running" in r.getMessage()]
    shown = ", ".join(f"t/{i:03d}" for i in range(20))
    assert line.endswith(f"subscriptions: {shown} and 80 more"), line

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

from mqferry._runtime.run import ABANDONED, StopSignals, run_app
from mqferry.testing import wait_until


class SlowStopApp(SimpleNamespace):
    """What :func:`run_app` uses of an app; :meth:`stop` waits for :attr:`release`."""

    def __init__(self) -> None:
        super().__init__(rules={}, actions={}, sources={}, topic_filters=set(), cluster=None)
        self.stopping = asyncio.Event()
        self.release = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopping.set()
        await self.release.wait()


async def test_a_second_signal_during_a_slow_stop_aborts_with_128_plus_its_number(caplog):
    app, aborted = SlowStopApp(), []
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
                       f"130): {ABANDONED}") in lines


async def test_the_first_signal_only_stops_gracefully():
    stop, aborted = asyncio.Event(), []
    on_signal = StopSignals(stop, aborted.append)
    on_signal(signal.SIGTERM)
    assert stop.is_set() and aborted == []
    on_signal(signal.SIGTERM)
    assert aborted == [143]


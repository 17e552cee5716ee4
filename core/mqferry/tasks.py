"""Helpers for the background tasks of components.

Every long-running loop of a component runs under a :class:`Supervisor`: when the loop dies the
death is logged with its traceback, the owner is told (it marks itself unhealthy with the
reason, so ``/status`` never says "connected" over a dead loop) and the loop is started again
after a jittered exponential back-off. ``tests/test_tasks.py`` walks the code for tasks created
any other way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

#: Called with the exception a supervised loop died of and the seconds until its restart.
FailureHandler = Callable[[BaseException, float], None]


async def cancel_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has finished; its cancellation is swallowed."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def describe(exc: BaseException) -> str:
    """A short reason for a status or a log line: ``TypeError('Recursion limit reached')``."""
    text = repr(exc)
    return text if len(text) <= 200 else text[:197] + "..."


class Supervisor:
    """Runs one named background loop; restarts it with jittered back-off when it dies.

    A loop that returns is finished (it saw its owner stopping) and is not restarted. One that
    raises is logged with its traceback, reported to ``on_failure`` and started again after a
    delay that doubles on each consecutive failure, from ``min_delay`` up to ``max_delay``; a run
    that lasted ``healthy_after`` seconds resets the delay. The task keeps ``name`` across
    restarts, so a stuck loop is identifiable.

    Args:
        name: the task name, e.g. ``mqferry[kafka_consumer:src].consume``.
        run: makes the loop's coroutine; called again for each restart, so it must start from
            a clean state (or clean up what a failed run left).
        on_failure: told about each death and the delay before the restart; the owner marks
            itself unhealthy with the reason. It must not raise.
        min_delay: the first restart delay, in seconds.
        max_delay: the longest restart delay, in seconds.
        healthy_after: a run at least this long resets the back-off, in seconds.
    """

    def __init__(self, name: str, run: Callable[[], Coroutine[Any, Any, None]], *,
                 on_failure: FailureHandler | None = None, min_delay: float = 0.5,
                 max_delay: float = 30.0, healthy_after: float = 60.0) -> None:
        self.name = name
        self._run = run
        self._on_failure = on_failure
        self._min_delay = min_delay
        self._max_delay = max_delay
        self._healthy_after = healthy_after
        self._task: asyncio.Task[None] | None = None
        #: How many times the loop died since :meth:`start`.
        self.failures = 0
        #: The exception of the last death, if any.
        self.last_failure: BaseException | None = None

    @property
    def running(self) -> bool:
        """Whether the loop runs or waits to be restarted."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the loop in the background (no-op when it runs already)."""
        if not self.running:
            self.failures = 0
            self.last_failure = None
            self._task = asyncio.get_running_loop().create_task(self._supervise(),
                                                                 name=self.name)

    async def stop(self) -> None:
        """Cancel the loop (or its pending restart) and wait until it has finished. Idempotent."""
        task, self._task = self._task, None
        await cancel_task(task)

    async def _supervise(self) -> None:
        delay = self._min_delay
        while True:
            began = time.monotonic()
            try:
                await self._run()
                return
            except Exception as exc:  # a supervisor outlives any failure of its loop
                if time.monotonic() - began >= self._healthy_after:
                    delay = self._min_delay
                wait = delay * (0.5 + random.random() / 2)
                self.failures += 1
                self.last_failure = exc
                log.error("task %s failed: %s; restarting in %.1fs", self.name, describe(exc),
                          wait, exc_info=exc)
                if self._on_failure is not None:
                    try:
                        self._on_failure(exc, wait)
                    except Exception:  # a faulty reporter must not stop the restarts
                        log.exception("task %s: its failure handler failed", self.name)
                await asyncio.sleep(wait)
                delay = min(delay * 2, self._max_delay)

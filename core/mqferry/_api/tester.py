"""Run the rule tester's evaluations in worker threads, with a time limit.

A tested rule runs user SQL, functions and templates on user input: it must never hold the event
loop (which serves the data path), and whatever it raises is the answer, never a 500. A small pool
of its own bounds how many run at once, so tests cannot take the threads config changes use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from mqferry._api.errors import ApiError

log = logging.getLogger(__name__)

__all__ = ["RuleTestRunner"]

T = TypeVar("T")


class RuleTestRunner:
    """Runs rule tests off the event loop.

    Args:
        workers: how many tests may run at once; more wait for a worker, up to ``timeout``,
            then are refused with 503.
        timeout: seconds a test may take before it is answered with 400 ``TIMEOUT`` (a thread
            cannot be stopped: it finishes in the background, holding its worker until then).
    """

    def __init__(self, *, workers: int = 2, timeout: float = 5.0) -> None:
        self.workers = workers
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=workers,
                                        thread_name_prefix="mqferry-rule-test")
        # Held from submission until the thread is done, past a timeout if need be: a runaway
        # test keeps its worker, and no test queues behind it in the pool unseen.
        self._slots = asyncio.Semaphore(workers)

    async def run(self, fn: Callable[[], T]) -> T:
        """The result of ``fn()``, run in a worker thread.

        Raises:
            ApiError: 503 when no worker came free within the timeout; 400 ``TIMEOUT`` when the
                test took longer than it.
            Exception: whatever ``fn`` raised.
        """
        try:
            async with asyncio.timeout(self.timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise ApiError(503, "SERVICE_UNAVAILABLE",
                           f"all {self.workers} rule test workers are busy; try again later"
                           ) from None
        future = asyncio.get_running_loop().run_in_executor(self._pool, fn)
        future.add_done_callback(lambda _: self._slots.release())
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            # Its result is of no use any more; retrieve any error so it is not reported.
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            log.warning("a rule test ran longer than %gs; answered with a timeout", self.timeout)
            raise ApiError(400, "TIMEOUT",
                           f"the test did not finish within {self.timeout:g}s") from None

"""Helpers for the background tasks of components.

Every long-running loop of a component runs under a :class:`Supervisor`: when the loop dies the
death is logged with its traceback, the owner is told (it marks itself unhealthy with the
reason, so ``/status`` never says "connected" over a dead loop) and the loop is started again
after a jittered exponential back-off. ``tests/test_tasks.py`` walks the code for tasks created
any other way.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

log = logging.getLogger(__name__)

#: Called with the exception a supervised loop died of and the seconds until its restart.
FailureHandler = Callable[[BaseException, float], None]


def cancel_requests() -> int:
    """How many cancellations of the calling task are pending (0 outside a task).

    Taken before an await whose ``CancelledError`` may be someone else's (a task being stopped,
    a client's own cancelled task), it tells afterwards whether the caller itself was cancelled
    meanwhile: then the count has grown. A bare non-zero count does not say that: it stays
    raised while a cancelled task runs its clean-up.
    """
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


async def cancel_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has finished.

    Its own cancellation is swallowed; the caller's is not: a caller cancelled (or timed out)
    while it waits is cancelled, as any await would leave it. A caller that is already being
    cancelled (stopping things in its clean-up) still waits for ``task``.
    """
    if task is None:
        return
    before = cancel_requests()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if cancel_requests() > before:
            raise  # the caller was cancelled while it waited


def describe(exc: BaseException) -> str:
    """A short reason for a status or a log line: ``TypeError('Recursion limit reached')``."""
    text = repr(exc)
    return text if len(text) <= 200 else text[:197] + "..."


class LoopCancelled(RuntimeError):
    """A supervised loop ended with a ``CancelledError`` that its owner did not ask for."""


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
        self._began = 0.0  # when the current run (or the pending restart's wait) began

    @property
    def running(self) -> bool:
        """Whether the loop runs or waits to be restarted."""
        return self._task is not None and not self._task.done()

    def problem(self) -> str | None:
        """Why the loop is not healthy, or ``None``.

        A loop that died is unhealthy until its restarted run has lasted ``healthy_after``
        seconds (or until :meth:`start` after a :meth:`stop`): the reason names the task, how
        many times it died and the last exception.
        """
        exc = self.last_failure
        if exc is None or not self.running:
            return None
        if time.monotonic() - self._began >= self._healthy_after:
            return None
        return (f"background task {self.name} failed ({self.failures}x since start, last: "
                f"{describe(exc)}); it is restarted with back-off")

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
            began = self._began = time.monotonic()
            try:
                await self._run()
                return
            except (Exception, asyncio.CancelledError) as exc:  # it outlives any failure
                if isinstance(exc, asyncio.CancelledError):
                    task = asyncio.current_task()
                    if task is None or task.cancelling():
                        raise  # stop(): the owner cancels the loop
                    # A library's own cancelled task leaked out of the loop: a death, not a stop.
                    stray = LoopCancelled(f"the loop of {self.name} ended with a cancellation "
                                          "nobody asked for")
                    stray.__cause__ = exc
                    exc = stray
                if time.monotonic() - began >= self._healthy_after:
                    delay = self._min_delay
                wait = delay * (0.5 + random.random() / 2)
                self.failures += 1
                self.last_failure = exc
                self._began = time.monotonic()
                log.error("task %s failed: %s; restarting in %.1fs", self.name, describe(exc),
                          wait, exc_info=exc)
                if self._on_failure is not None:
                    try:
                        self._on_failure(exc, wait)
                    except Exception:  # a faulty reporter must not stop the restarts
                        log.exception("task %s: its failure handler failed", self.name)
                await asyncio.sleep(wait)
                delay = min(delay * 2, self._max_delay)


class Supervisors:
    """The named background loops of one app, each owned by a component (or a part of the app).

    The group starts and stops its loops together, as a ``TaskGroup`` does, and tells which
    owners have a loop that died recently (:meth:`problems`), so their health says so with the
    reason instead of looking fine over a dead loop. Each loop runs under its own
    :class:`Supervisor`: logged with its traceback when it dies and restarted with back-off.
    """

    def __init__(self) -> None:
        self._loops: dict[str, tuple[str, Supervisor]] = {}

    def add(self, owner: str, name: str, run: Callable[[], Coroutine[Any, Any, None]],
            **options: Any) -> Supervisor:
        """Supervise ``run`` as task ``name`` on behalf of ``owner`` (not started yet).

        Args:
            owner: the id whose health the loop's deaths mark (``mqtt``, a component id).
            name: the task name, unique in the group.
            run: makes the loop's coroutine (see :class:`Supervisor`).
            **options: :class:`Supervisor`'s keyword arguments.

        Raises:
            ValueError: ``name`` is taken.
        """
        return self.adopt(owner, Supervisor(name, run, **options))

    def adopt(self, owner: str, sup: Supervisor) -> Supervisor:
        """Put the loop of ``sup`` (made by a part of the app) in the group, for ``owner``.

        Raises:
            ValueError: a loop with its name is in the group.
        """
        if sup.name in self._loops:
            raise ValueError(f"a background task named {sup.name!r} is supervised already")
        self._loops[sup.name] = (owner, sup)
        return sup

    def __iter__(self) -> Iterator[Supervisor]:
        return (sup for _, sup in self._loops.values())

    def start(self) -> None:
        """Start every loop (those running already are left alone)."""
        for sup in self:
            sup.start()

    async def stop(self) -> None:
        """Stop every loop and wait until all have finished. Idempotent."""
        for sup in self:
            await sup.stop()

    def problems(self) -> dict[str, list[tuple[str, str]]]:
        """``owner -> [(task name, reason)]`` for the loops that died recently."""
        out: dict[str, list[tuple[str, str]]] = {}
        for owner, sup in self._loops.values():
            reason = sup.problem()
            if reason is not None:
                out.setdefault(owner, []).append((sup.name, reason))
        return out

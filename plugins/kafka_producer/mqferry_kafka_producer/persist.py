"""Writing a disk or hybrid buffer's records to disk, whether or not Kafka answers.

A record bound for the disk is secured once it is fsync'd (its MQTT ack may go), so persisting
must not wait for Kafka: the flush loop may be connecting for minutes. :class:`Persister` runs
its own loop, woken when records are admitted for the disk; the flush loop asks it too before a
round, so that a batch takes what just arrived.

A write that fails (the disk is full, say) leaves its records queued in memory, in order, and
unsecured (their MQTT acks wait); it is counted as ``persist_errors``, logged at most once every
10 seconds, and tried again with back-off until the disk takes them.

The loop opens the disk buffer first, the same way: a directory that cannot be used (permission
denied, a file in its place) or that this process still holds (the action being replaced has
not closed it: its stop overran, a write hangs) is counted as ``disk_open_errors``, said by the
action's health, logged at most once every 10 seconds and tried again with back-off; meanwhile
the records admitted for the disk wait in memory, unsecured. Once it opens, the records a
previous owner left there are replayed. A memory buffer opens the directory only when it holds
segment files, to send what they hold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from mqferry import DiskBufferError, DiskBufferInUseError, LogLimiter, Metrics, describe
from mqferry_kafka_producer.records import RecordBuffer

log = logging.getLogger(__name__)

#: the longest pause between two attempts to write to a disk that refused
MAX_PERSIST_BACKOFF = 5.0


class Persister:
    """Moves an action's records from memory to its disk buffer.

    Args:
        action_id: ``kafka_producer:<name>``, for logs.
        buffer: the action's record buffer (with a disk queue).
        metrics: the action's metrics (``persist_errors``, ``disk_open_errors``).
        ready: set when records were persisted, so that the flush loop sends them.
        replay: queues what the disk buffer holds once it opens (``RecordBuffer.recover`` at
            the action's clock); returns how many records it queued.
        replayed: told how many records were queued from the disk, once it opened.
    """

    def __init__(self, action_id: str, buffer: RecordBuffer, metrics: Metrics,
                 ready: asyncio.Event, *, replay: Callable[[], Awaitable[int]],
                 replayed: Callable[[int], None]) -> None:
        self.id = action_id
        self.buffer = buffer
        self.metrics = metrics
        self.ready = ready
        self._replay = replay
        self._replayed = replayed
        #: why the disk buffer cannot be opened, while it cannot
        self.open_error: str | None = None
        #: set when records are admitted for the disk
        self.wake = asyncio.Event()
        #: the pause before the next attempt after a failed write (0: the last one worked)
        self.delay = 0.0
        #: the last failed write's error, while the disk refuses
        self.error: str | None = None
        self._next_try = 0.0
        self._warn = LogLimiter(log, interval=10.0)

    async def persist(self) -> bool:
        """Write what waits for the disk, unless in back-off; whether nothing waits any more."""
        buffer = self.buffer
        if not buffer.to_persist:
            return True
        if buffer.disk is None or (self.delay and time.monotonic() < self._next_try):
            return False  # not open yet (the loop opens it), or in back-off
        try:
            await buffer.persist()
        except OSError as exc:
            self._failed(exc)
            return False
        if self.error is not None:
            log.info("action %s: the disk buffer takes records again", self.id)
            self.error = None
        self.delay = 0.0
        self.ready.set()
        return not buffer.to_persist

    def _back_off(self) -> None:
        """Double the pause before the next attempt (0.1 s first, at most
        :data:`MAX_PERSIST_BACKOFF`)."""
        self.delay = min(max(0.1, self.delay * 2), MAX_PERSIST_BACKOFF)
        self._next_try = time.monotonic() + self.delay

    def _failed(self, exc: OSError) -> None:
        self.metrics.inc("persist_errors")
        self.error = describe(exc)
        self._back_off()
        self._warn.warning(
            "persist", "action %s: cannot write %d records to the disk buffer (%s); they stay "
            "queued in memory, unsecured (their MQTT acks wait), and are tried again in %.1fs",
            self.id, len(self.buffer.to_persist), self.error, self.delay)
        self.wake.set()  # the loop retries after the pause

    async def open(self, *, refuse_foreign: bool = False) -> bool:
        """Open the disk buffer and replay what it holds, unless it is open or in back-off;
        whether it is open (or, in memory mode, need not be).

        Raises:
            DiskBufferInUseError: with ``refuse_foreign``, another process holds the directory
                (two instances given one ``data_dir``); nothing is counted or retried.
        """
        if self.buffer.disk is not None:
            return True
        if self.delay and time.monotonic() < self._next_try:
            return False
        try:
            count = await self._replay()
        except DiskBufferInUseError as exc:
            if refuse_foreign and not exc.this_process:
                raise
            self._open_failed(exc)
            return False
        except DiskBufferError as exc:
            self._open_failed(exc)
            return False
        if self.open_error is not None:
            log.info("action %s: the disk buffer %s is open", self.id, self.buffer.directory)
            self.open_error = None
        self.delay = 0.0
        self._replayed(count)
        return True

    def _open_failed(self, exc: DiskBufferError) -> None:
        self.metrics.inc("disk_open_errors")
        self.open_error = str(exc)
        self._back_off()
        self._warn.warning(
            "open", "action %s: %s; what the directory holds is not sent, and %d records for "
            "the disk wait in memory, unsecured (their MQTT acks wait); trying again in %.1fs",
            self.id, self.open_error, len(self.buffer.to_persist), self.delay)

    async def run(self) -> None:
        """Open the disk buffer (retrying), then persist whenever records are admitted for
        the disk; retry failed writes."""
        while True:
            if await self.open():
                break
            await asyncio.sleep(max(0.0, self._next_try - time.monotonic()))
        while True:
            await self.wake.wait()
            self.wake.clear()
            if not await self.persist():
                await asyncio.sleep(max(0.0, self._next_try - time.monotonic()))
                self.wake.set()

    async def final(self, timeout: float) -> None:
        """On stop: write what is still in memory, trying again for up to ``timeout`` seconds."""
        if self.buffer.disk is None and self.buffer.to_persist:
            self.delay = 0.0  # one last attempt to open a disk buffer that would not open
            if not await self.open():
                self.error = self.open_error
                return
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                while True:
                    if await self.persist():
                        return
                    await asyncio.sleep(max(0.0, self._next_try - time.monotonic()))
        except TimeoutError:
            if self.error is None:
                self.error = f"the disk did not take them within {timeout:.1f}s"


def left_behind(buffer: RecordBuffer, left: int, unsaved_inflight: int,
                error: str | None) -> str:
    """Where the ``left`` records a stopped action did not send are, for its last log line.

    A record not kept on disk is not settled with its origin, and comes back from there: an MQTT
    message from the broker (its PUBACK was held), a Kafka source's record from the consumer
    group (its offset was not committed). The action does not know which it holds: both are said.
    """
    if buffer.disk is None:
        return f"not settled with their origin, so they come back: {_COME_BACK}"
    unsaved = buffer.unsaved() + unsaved_inflight
    if not unsaved:
        return "kept in the disk buffer"
    return (f"{left - unsaved} kept in the disk buffer, {unsaved} NOT kept (in memory"
            f"{'' if error is None else ', not written to disk: ' + error}) and not settled "
            f"with their origin: {_COME_BACK}; MQTT messages taken with mqtt.delivery: "
            "at_most_once are lost")


#: How what an action did not secure comes back, by where it came from.
_COME_BACK = ("the MQTT broker redelivers the MQTT messages (their acks were not sent), and a "
              "Kafka source's consumer group reads its records again (their offsets were not "
              "committed)")

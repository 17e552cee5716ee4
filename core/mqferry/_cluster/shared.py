"""A compare-and-set over a cluster log: every node keeps the same accepted value per key.

A record carries the version it is based on and a unique write id. Every node reads the log in
the same order and accepts a record only if its base is the version it holds, so of two writers
racing on version V the first in the log wins and the other is rejected, identically everywhere.
The writer waits until it reads its own record back to learn which.

Compaction keeps only a key's last record. A rejected record must not become what a node
starting later reads, so a node that sees a rejected record last writes the accepted value again
(a *restatement*: based on the current version, changing nothing; idempotent).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mqferry._cluster.transport import ClusterLog, LogRecord
from mqferry._errors import MqferryError
from mqferry._tasks import Supervisor, cancel_task

log = logging.getLogger(__name__)

__all__ = ["HISTORY", "Outcome", "SharedLog", "SharedValue", "fingerprint"]

#: How many fingerprints of past versions a record carries (to tell "behind" from "different").
HISTORY = 64
#: How long after reading a rejected last record a node restates (spread so they rarely collide).
RESTATE_DELAY = (0.2, 1.0)


def fingerprint(value: Any) -> str:
    """A stable digest of a JSON-able value (key order does not matter)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(slots=True)
class SharedValue:
    """One key's accepted state."""

    #: 0: nothing accepted yet.
    version: int = 0
    value: Any = None
    #: Fingerprints of the last accepted versions, the newest last.
    history: tuple[str, ...] = ()
    #: The node that wrote the accepted version.
    node: str = ""
    #: The offset of the key's last record, and whether it was rejected.
    last_offset: int = -1
    last_rejected: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a write: accepted (as ``version``) or rejected (the key is at ``version``)."""

    accepted: bool
    version: int


class SharedLog:
    """Reads a cluster log in order and keeps each key's accepted value; writes compare-and-set.

    Args:
        log: the cluster log (``config``).
        node: this node's name (written into records, for the logs).
        write_timeout: how long a writer waits to read its record back, in seconds.
    """

    def __init__(self, log: ClusterLog, *, node: str, write_timeout: float = 10.0) -> None:
        self.log = log
        self.node = node
        self.write_timeout = write_timeout
        self.values: dict[str, SharedValue] = {}
        #: The offset of the next record to read.
        self.position = 0
        #: Whether the log has been read to its end once (what it says is the cluster's).
        self.caught = False
        self._moved = asyncio.Condition()
        self._waiting: dict[str, asyncio.Future[Outcome]] = {}
        self._listeners: list[Callable[[str, SharedValue], None]] = []
        self.reader = Supervisor(f"mqferry[cluster].{log.name}", self._read)
        self._restates: set[asyncio.Task[None]] = set()

    def listen(self, listener: Callable[[str, SharedValue], None]) -> None:
        """Call ``listener(key, value)`` after each accepted version (in log order)."""
        self._listeners.append(listener)

    def value(self, key: str) -> SharedValue:
        """The accepted state of ``key`` (version 0 when nothing was accepted)."""
        return self.values.setdefault(key, SharedValue())

    def start(self) -> None:
        """Start reading the log from its beginning."""
        self.reader.start()

    async def stop(self) -> None:
        """Stop reading (idempotent)."""
        tasks = list(self._restates)
        for task in tasks:  # all asked to stop first: a cancelled caller leaves none running
            task.cancel()
        await self.reader.stop()
        for task in tasks:
            with contextlib.suppress(Exception):
                await cancel_task(task)

    async def caught_up(self, timeout: float) -> None:
        """Return once every record the log held when called has been read.

        Raises:
            MqferryError: the log cannot be reached, or was not read to its end within
                ``timeout`` seconds.
        """
        self.start()
        try:
            async with asyncio.timeout(timeout):
                end = await self.log.end()
        except TimeoutError:
            raise MqferryError(f"the cluster log {self.log.name!r} did not answer within "
                               f"{timeout:g} s") from None
        try:
            async with asyncio.timeout(timeout):
                async with self._moved:
                    await self._moved.wait_for(lambda: self.position >= end)
        except TimeoutError:
            raise MqferryError(f"the cluster log {self.log.name!r} was not read to its end "
                               f"(offset {end}) within {timeout:g} s") from None
        self.caught = True

    async def write(self, key: str, value: Any, *, base: int) -> Outcome:
        """Write ``value`` as the version after ``base``; return once it is read back.

        Raises:
            MqferryError: the log could not be written, or the record was not read back in time.
        """
        state = self.value(key)
        history = (*state.history, fingerprint(value))[-HISTORY:]
        return await self._append(key, {"base": base, "version": base + 1, "value": value,
                                        "history": list(history)})

    async def _append(self, key: str, body: dict[str, Any]) -> Outcome:
        write_id = uuid.uuid4().hex
        body = {**body, "write_id": write_id, "node": self.node}
        loop = asyncio.get_running_loop()
        start = loop.time()

        def deadline() -> float:
            return start + self.write_timeout

        waiter: asyncio.Future[Outcome] = loop.create_future()
        self._waiting[write_id] = waiter
        encoded = json.dumps(body, separators=(",", ":")).encode()
        try:
            async with asyncio.timeout(self.write_timeout):
                while True:
                    try:
                        await self.log.append(key, encoded)
                        break
                    except MqferryError:
                        # Nothing was appended (the transport may still be connecting): try
                        # again until the deadline, then the last error is the reason.
                        if asyncio.get_running_loop().time() + 0.5 > deadline():
                            raise
                        await asyncio.sleep(0.25)
                return await waiter
        except TimeoutError:
            raise MqferryError(f"the cluster log {self.log.name!r}: the write of {key!r} was not "
                               f"read back within {self.write_timeout:g} s") from None
        finally:
            self._waiting.pop(write_id, None)

    async def _read(self) -> None:
        # A restarted reader goes on where the last one stopped: what it applied stays applied.
        async for record in self.log.read(self.position):
            self._apply(record)
            async with self._moved:
                self.position = record.offset + 1
                self._moved.notify_all()

    def _apply(self, record: LogRecord) -> None:
        if record.value is None:
            return  # a tombstone: nothing of ours writes them
        try:
            body = json.loads(record.value)
            base, version = int(body["base"]), int(body["version"])
            value, history = body["value"], tuple(body.get("history") or ())
        except (ValueError, TypeError, KeyError) as exc:
            log.error("cluster log %s: record %d (key %r) is not a shared value, skipped: %s",
                      self.log.name, record.offset, record.key, exc)
            return
        state = self.value(record.key)
        # A node that has accepted nothing takes the first record it reads: after compaction
        # that is the key's last accepted (or restated) version, whatever its base.
        accepted = state.value is None or base == state.version
        state.last_offset, state.last_rejected = record.offset, not accepted
        if accepted:
            changed = version != state.version or state.value is None
            state.version, state.value, state.history = version, value, history
            state.node = str(body.get("node", ""))
            if changed:
                for listener in self._listeners:
                    listener(record.key, state)
        else:
            log.info("cluster log %s: %s's write of %r based on version %d rejected "
                     "(the key is at version %d)", self.log.name, body.get("node"), record.key,
                     base, state.version)
        waiter = self._waiting.get(str(body.get("write_id")))
        if waiter is not None and not waiter.done():
            waiter.set_result(Outcome(accepted, state.version))
        if not accepted:
            self._restate_soon(record.key, record.offset)

    def _restate_soon(self, key: str, offset: int) -> None:
        task = asyncio.get_running_loop().create_task(
            self._restate(key, offset), name=f"mqferry[cluster].{self.log.name}.restate")
        self._restates.add(task)
        task.add_done_callback(self._restates.discard)

    async def _restate(self, key: str, offset: int) -> None:
        await asyncio.sleep(random.uniform(*RESTATE_DELAY))
        state = self.value(key)
        if state.last_offset != offset or not state.last_rejected:
            return  # somebody wrote after it
        try:
            await self._append(key, {"base": state.version, "version": state.version,
                                     "value": state.value, "history": list(state.history),
                                     "restate": True})
        except MqferryError as exc:
            log.warning("cluster log %s: could not restate %r after a rejected write: %s",
                        self.log.name, key, exc)

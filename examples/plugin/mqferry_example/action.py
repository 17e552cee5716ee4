"""The ``jsonl_file`` action: each rule output appended to a file as one JSON line.

An output is *secured* (its MQTT message may be acknowledged) only once its line is on disk: the
writer loop takes what was submitted, writes and fsyncs it in a worker thread, then calls the
deliveries back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from mqferry import (
    ActionConfigBase,
    Delivery,
    HealthStatus,
    Status,
    Strict,
    Supervisor,
    action_metrics,
    describe,
    to_json,
)

log = logging.getLogger(__name__)


class JsonLinesParameters(Strict):
    """``actions.jsonl_file.<name>.parameters``."""

    #: the file lines are appended to (created when missing)
    path: str
    #: the most outputs written with one fsync
    max_batch: int = Field(100, ge=1)


class JsonLinesConfig(ActionConfigBase):
    """One ``jsonl_file`` action: the common action fields plus ``parameters``."""

    parameters: JsonLinesParameters


class JsonLinesAction:
    """Appends rule outputs to a file, one JSON line each.

    Args:
        name: the action's name; its id is ``jsonl_file:<name>``.
        config: its validated config.
    """

    def __init__(self, *, name: str, config: JsonLinesConfig) -> None:
        self.id = f"jsonl_file:{name}"
        self.metrics = action_metrics(self.id)
        self.metrics.gauge("queuing", lambda: len(self._queue))
        self._path = Path(config.parameters.path)
        self._max_batch = config.parameters.max_batch
        self._queue: list[tuple[bytes, Delivery]] = []
        self._drained = asyncio.Event()  # set while nothing is queued or being written
        self._drained.set()
        self._wake = asyncio.Event()
        self._status = HealthStatus(Status.STOPPED)
        # a named, supervised loop: restarted with back-off if it ever dies
        self._writer = Supervisor(f"mqferry[{self.id}].write", self._write_loop,
                                  on_failure=self._writer_died)

    def submit(self, output: Mapping[str, Any], delivery: Delivery) -> None:
        """Queue one output; never blocks. One that cannot be encoded fails alone."""
        self.metrics.inc("matched")
        try:
            line = to_json(dict(output)) + b"\n"
        except Exception as exc:  # a hostile output must not stop the rule or hold its ack
            self.metrics.inc("failed")
            log.warning("action %s: cannot encode the output: %s", self.id, describe(exc))
            delivery.failed("failed.encode")
            return
        self._queue.append((line, delivery))
        self._drained.clear()
        self._wake.set()

    async def start(self) -> None:
        """Start the writer loop (it never raises because the file cannot be written)."""
        self._status = HealthStatus(Status.CONNECTED)
        self._writer.start()

    async def stop(self) -> None:
        """Write what is queued (for up to 10 s), then stop the loop. Idempotent.

        Whatever could not be written by then fails (``failed.stopped``): a delivery is never
        left pending, since it holds the acknowledgement of an MQTT message.
        """
        if self._writer.running:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self._drained.wait()
        await self._writer.stop()
        queued, self._queue = self._queue, []
        self._fail([d for _, d in queued], "failed.stopped")
        self._status = HealthStatus(Status.STOPPED)

    async def health(self) -> HealthStatus:
        """``connected``, or ``disconnected`` with the reason the last write failed."""
        return self._status

    def _writer_died(self, exc: BaseException, delay: float) -> None:
        self._status = HealthStatus(Status.DISCONNECTED, f"writer failed: {describe(exc)}")

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: len(batch)]
                deliveries = [d for _, d in batch]
                try:
                    await asyncio.to_thread(self._append, [line for line, _ in batch])
                except OSError as exc:
                    # the batch fails (counted, and the rule's failure reason says why); later
                    # outputs are tried again
                    self._status = HealthStatus(Status.DISCONNECTED, f"{self._path}: {exc}")
                    log.warning("action %s: writing %d outputs failed: %s", self.id,
                                len(batch), exc)
                    self._fail(deliveries, "failed.write")
                    continue
                except asyncio.CancelledError:
                    self._fail(deliveries, "failed.stopped")
                    raise
                self._status = HealthStatus(Status.CONNECTED)
                self.metrics.inc("success", len(batch))
                for delivery in deliveries:
                    delivery.secured()
            self._drained.set()

    def _fail(self, deliveries: list[Delivery], reason: str) -> None:
        self.metrics.inc("failed", len(deliveries))
        for delivery in deliveries:
            delivery.failed(reason)

    def _append(self, lines: list[bytes]) -> None:
        with self._path.open("ab") as f:
            f.write(b"".join(lines))
            f.flush()
            os.fsync(f.fileno())

"""Starting Kafka clients while the cluster may be down: retry with jittered back-off."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka.errors import KafkaError

from mqferry import RetryLog

log = logging.getLogger(__name__)

T = TypeVar("T")


async def start_with_backoff(
    attempt: Callable[[], Awaitable[T]],
    *,
    what: str,
    hosts: str,
    on_waiting: Callable[[str], None],
    max_delay: float = 30.0,
) -> T:
    """Call ``attempt`` until it succeeds; never raises because Kafka is unreachable.

    Args:
        attempt: builds and starts the client; it must clean up what it started before raising.
        what: the component, for the log (``action kafka_producer:sink``).
        hosts: the bootstrap hosts, for the reason.
        on_waiting: called with the reason after each failure (to report the status).
        max_delay: the longest pause between attempts, in seconds.
    """
    delay = 0.5
    retries = RetryLog(log, f"{what}: Kafka")
    while True:
        try:
            client = await attempt()
        except (KafkaError, OSError) as exc:
            reason = f"{hosts}: {exc}"
            on_waiting(reason)
            pause = delay * (0.5 + random.random() / 2)
            retries.failed(reason, pause)  # once per reason: aiokafka's own line is demoted
            await asyncio.sleep(pause)
            delay = min(delay * 2, max_delay)
        else:
            retries.reset()
            return client

"""Closing aiokafka clients: bounded, a failure is a logged reason, never the caller's end."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiokafka.errors import KafkaConnectionError

from mqferry_kafka import close_client


async def _stop_that_leaks_its_cancelled_fetch() -> None:
    # What aiokafka's consumer stop does when a fetch task slept between retries: it cancels
    # the task and awaits it, so that task's CancelledError comes out of stop().
    fetch = asyncio.get_running_loop().create_task(asyncio.sleep(10))
    await asyncio.sleep(0)
    fetch.cancel()
    await fetch


async def test_a_cancellation_from_inside_the_client_is_a_reason_not_the_callers_end(caplog):
    with caplog.at_level(logging.WARNING, logger="mqferry_kafka.close"):
        reason = await close_client(_stop_that_leaks_its_cancelled_fetch(), "source s",
                                    timeout=5)
    assert reason == "the client's stop was cancelled from inside the client"
    assert "source s: closing the Kafka client failed" in caplog.text
    # the caller goes on: nothing was cancelled
    await asyncio.sleep(0)


async def test_the_callers_own_cancellation_goes_through():
    started = asyncio.Event()

    async def slow_stop() -> None:
        started.set()
        await asyncio.sleep(10)

    task = asyncio.get_running_loop().create_task(close_client(slow_stop(), "x", timeout=30))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_stop_that_hangs_is_bounded_and_a_kafka_error_is_a_reason():
    assert await close_client(asyncio.sleep(10), "x", timeout=0.05) == "not closed within 0.1s"

    async def refused() -> None:
        raise KafkaConnectionError("broker gone")

    assert "broker gone" in (await close_client(refused(), "x", timeout=1) or "")
    assert await close_client(asyncio.sleep(0), "x", timeout=1) is None

"""The producer action's test setup: an action on the Kafka twin, started and stopped for a test.

A test module may set ``ACTION_DEFAULTS``: the parameters its actions are made with unless the
test says otherwise (``topic``, ``close_timeout``, ...).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from mqferry.testing import RecordingDelivery
from mqferry_kafka import KafkaConnector, KafkaConnectorConfig
from mqferry_kafka.testing import KafkaTwin
from mqferry_kafka_producer.action import KafkaProducerAction
from mqferry_kafka_producer.config import KafkaProducerActionConfig


def build_action(tmp_path: Path, kafka: KafkaTwin, *, close_timeout: float = 1.0,
                 **params: Any) -> KafkaProducerAction:
    """A ``kafka_producer:a`` action whose producer is ``kafka`` (not started)."""
    params.setdefault("topic", "t")
    params.setdefault("message", {"key": "", "value": "${v}"})
    cfg = KafkaProducerActionConfig(connector="k", parameters=params)
    conn = KafkaConnector(kind="kafka_producer", name="k",
                          config=KafkaConnectorConfig(bootstrap_hosts="h:9092"))
    return KafkaProducerAction(name="a", config=cfg, connector=conn, data_dir=tmp_path,
                               producer_factory=kafka, close_timeout=close_timeout)


@pytest.fixture
def make(request: pytest.FixtureRequest,
         tmp_path: Path) -> Callable[..., KafkaProducerAction]:
    """``make(kafka, **parameters)``: :func:`build_action` with the module's defaults."""
    defaults = getattr(request.module, "ACTION_DEFAULTS", {})

    def build(kafka: KafkaTwin, **params: Any) -> KafkaProducerAction:
        return build_action(tmp_path, kafka, **{**defaults, **params})
    return build


@pytest.fixture
async def running(make: Callable[..., KafkaProducerAction]
                  ) -> AsyncIterator[Callable[..., Awaitable[KafkaProducerAction]]]:
    """``await running(kafka, **parameters)``: a started action, stopped after the test."""
    actions = []

    async def start(kafka: KafkaTwin, **params: Any) -> KafkaProducerAction:
        action = make(kafka, **params)
        await action.start()
        actions.append(action)
        return action

    yield start
    for action in actions:
        await action.stop(timeout=1.0)


async def _settled(*deliveries: RecordingDelivery, timeout: float = 5.0) -> list[str | None]:
    await asyncio.wait_for(asyncio.gather(*(d.done.wait() for d in deliveries)), timeout)
    return [d.outcome for d in deliveries]


@pytest.fixture
def settled() -> Callable[..., Awaitable[list[str | None]]]:
    """``await settled(*deliveries, timeout=5.0)``: their outcomes, once all are settled."""
    return _settled

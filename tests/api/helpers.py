"""Feeding messages through an App's data path without a broker."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

_mids = iter(range(1, 1_000_000))


def publish(app: Any, topic: str, payload: bytes, ticket: Any = None) -> None:
    """Hand ``app`` one MQTT message as the MQTT client would."""
    msg = SimpleNamespace(topic=topic, payload=payload, qos=1, mid=next(_mids), retain=False,
                          dup=False, properties=None)
    app._on_message(msg, ticket)


async def on_disk(controller: Any, path: Any) -> dict[str, Any]:
    """The config file as written back, once every applied change is on disk."""
    import yaml

    await controller.flush()
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data

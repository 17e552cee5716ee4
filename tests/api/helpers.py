"""Feeding messages through an App's data path without a broker."""

from __future__ import annotations

from typing import Any

from mqferry._rules.topic import topic_matches


def publish(app: Any, topic: str, payload: bytes, *, qos: int = 0) -> int | None:
    """Deliver one MQTT message to ``app`` (built by mqferry.testing.build_app) as its broker
    would: only when one of its subscriptions matches ``topic``. Returns the packet id."""
    if not any(topic_matches(f, topic) for f in app.mqtt.subscriptions):
        return None  # the broker does not deliver it
    mid: int | None = app.mqtt.deliver(topic, payload, qos=qos)
    return mid


async def on_disk(controller: Any, path: Any) -> dict[str, Any]:
    """The config file as written back, once every applied change is on disk."""
    import yaml

    await controller.flush()
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data

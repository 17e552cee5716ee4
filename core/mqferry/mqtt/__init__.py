"""The MQTT connector in the core: ordered deferred acks, subscriptions, publishing."""

from __future__ import annotations

from mqferry.mqtt.acks import AckWindow, Countdown, Ticket
from mqferry.mqtt.client import MessageHandler, MqttConnector, publish_properties

__all__ = [
    "AckWindow",
    "Countdown",
    "MessageHandler",
    "MqttConnector",
    "Ticket",
    "publish_properties",
]

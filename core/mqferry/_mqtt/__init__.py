"""The MQTT connector in the core: the ack window, subscriptions, publishing."""

from __future__ import annotations

from mqferry._mqtt.acks import AckWindow
from mqferry._mqtt.client import MessageHandler, MqttConnector, publish_properties

__all__ = [
    "AckWindow",
    "MessageHandler",
    "MqttConnector",
    "publish_properties",
]

"""The MQTT connector in the core: the ack window, subscriptions, publishing."""

from __future__ import annotations

from mqferry.mqtt.acks import AckWindow
from mqferry.mqtt.client import MessageHandler, MqttConnector, publish_properties

__all__ = [
    "AckWindow",
    "MessageHandler",
    "MqttConnector",
    "publish_properties",
]

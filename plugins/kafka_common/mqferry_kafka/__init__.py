"""Kafka connection settings and checks shared by the Kafka plugins.

A library of the ``kafka_producer`` and ``kafka_consumer`` plugins, not a plugin itself: it
registers nothing, so each connector type is still registered once, by its own plugin. The core
never imports it (nor aiokafka).
"""

from __future__ import annotations

from mqferry_kafka.close import close_client
from mqferry_kafka.config import (
    KafkaConnectorConfig,
    SaslAuth,
    SocketOptions,
    TlsOptions,
    client_options,
)
from mqferry_kafka.connector import KafkaConnector
from mqferry_kafka.probe import probe
from mqferry_kafka.retry import start_with_backoff

__all__ = [
    "KafkaConnector",
    "KafkaConnectorConfig",
    "SaslAuth",
    "SocketOptions",
    "TlsOptions",
    "client_options",
    "close_client",
    "probe",
    "start_with_backoff",
]

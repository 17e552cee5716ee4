"""Kafka connection settings and checks shared by the Kafka plugins."""

from __future__ import annotations

from mqferry.kafka.config import (
    KafkaConnectorConfig,
    SaslAuth,
    SocketOptions,
    TlsOptions,
    client_options,
)
from mqferry.kafka.connector import KafkaConnector
from mqferry.kafka.probe import probe
from mqferry.kafka.retry import start_with_backoff

__all__ = [
    "KafkaConnector",
    "KafkaConnectorConfig",
    "SaslAuth",
    "SocketOptions",
    "TlsOptions",
    "client_options",
    "probe",
    "start_with_backoff",
]

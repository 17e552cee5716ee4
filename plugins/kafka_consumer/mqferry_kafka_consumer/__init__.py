"""The ``kafka_consumer`` connector and source: Kafka records to MQTT and to rules."""

from __future__ import annotations

from mqferry import (
    ConnectorRegister,
    ConnectorType,
    RuntimeContext,
    Source,
    SourceRegister,
    SourceType,
    check_compiled,
    hookimpl,
)
from mqferry_kafka import KafkaConnector, KafkaConnectorConfig, probe
from mqferry_kafka_consumer.config import KafkaConsumerSourceConfig

# the handler and the record decoding may be compiled (scripts/compile.py): not older than their
# source
check_compiled(__path__)

from mqferry_kafka_consumer.message import EVENT_COLUMNS  # noqa: E402


def _connector(name: str, config: KafkaConnectorConfig, ctx: RuntimeContext) -> KafkaConnector:
    return KafkaConnector(kind="kafka_consumer", name=name, config=config)


def _source(name: str, config: KafkaConsumerSourceConfig, connector: KafkaConnector,
            ctx: RuntimeContext) -> Source:
    from mqferry_kafka_consumer.source import KafkaConsumerSource

    return KafkaConsumerSource(name=name, config=config, connector=connector, context=ctx)


@hookimpl
def mqferry_register_connector_types(register: ConnectorRegister) -> None:
    """Register the ``kafka_consumer`` connector type."""
    register.add(ConnectorType("kafka_consumer", KafkaConnectorConfig, _connector,
                               "Kafka cluster connection for consuming", probe=probe))


@hookimpl
def mqferry_register_source_types(register: SourceRegister) -> None:
    """Register the ``kafka_consumer`` source type."""
    register.add(SourceType("kafka_consumer", KafkaConsumerSourceConfig, _source,
                            connector_type="kafka_consumer",
                            description="Consume Kafka topics into MQTT and rules",
                            event_columns=EVENT_COLUMNS))

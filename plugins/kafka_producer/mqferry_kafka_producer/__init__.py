"""The ``kafka_producer`` connector and action: rule outputs into Kafka topics."""

from __future__ import annotations

from typing import Any

from mqferry import ActionType, ConnectorType, hookimpl
from mqferry_kafka import KafkaConnector, KafkaConnectorConfig, probe
from mqferry_kafka_producer.config import KafkaProducerActionConfig


def _connector(name: str, config: Any, ctx: Any) -> Any:
    return KafkaConnector(kind="kafka_producer", name=name, config=config)


def _action(name: str, config: Any, connector: Any, ctx: Any) -> Any:
    from mqferry_kafka_producer.action import KafkaProducerAction

    return KafkaProducerAction(name=name, config=config, connector=connector,
                               data_dir=ctx.data_dir)


@hookimpl
def mqferry_register_connector_types(register: Any) -> None:
    """Register the ``kafka_producer`` connector type."""
    register.add(ConnectorType("kafka_producer", KafkaConnectorConfig, _connector,
                               "Kafka cluster connection for producing", probe=probe))


@hookimpl
def mqferry_register_action_types(register: Any) -> None:
    """Register the ``kafka_producer`` action type."""
    register.add(ActionType("kafka_producer", KafkaProducerActionConfig, _action,
                            connector_type="kafka_producer",
                            description="Write rule outputs to a Kafka topic"))

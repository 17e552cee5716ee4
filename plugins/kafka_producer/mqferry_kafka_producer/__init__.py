"""The ``kafka_producer`` connector and action: rule outputs into Kafka topics."""

from __future__ import annotations

from mqferry import (
    Action,
    ActionRegister,
    ActionType,
    ConnectorRegister,
    ConnectorType,
    RuntimeContext,
    check_compiled,
    hookimpl,
)
from mqferry_kafka import KafkaConnector, KafkaConnectorConfig, probe
from mqferry_kafka_producer.config import KafkaProducerActionConfig

# the action, records and sender may be compiled (scripts/compile.py): not older than their source
check_compiled(__path__)


def _connector(name: str, config: KafkaConnectorConfig, ctx: RuntimeContext) -> KafkaConnector:
    return KafkaConnector(kind="kafka_producer", name=name, config=config)


def _action(name: str, config: KafkaProducerActionConfig, connector: KafkaConnector,
            ctx: RuntimeContext) -> Action:
    from mqferry_kafka_producer.action import KafkaProducerAction

    return KafkaProducerAction(name=name, config=config, connector=connector,
                               data_dir=ctx.data_dir)


@hookimpl
def mqferry_register_connector_types(register: ConnectorRegister) -> None:
    """Register the ``kafka_producer`` connector type."""
    register.add(ConnectorType("kafka_producer", KafkaConnectorConfig, _connector,
                               "Kafka cluster connection for producing", probe=probe))


@hookimpl
def mqferry_register_action_types(register: ActionRegister) -> None:
    """Register the ``kafka_producer`` action type."""
    register.add(ActionType("kafka_producer", KafkaProducerActionConfig, _action,
                            connector_type="kafka_producer",
                            description="Write rule outputs to a Kafka topic"))

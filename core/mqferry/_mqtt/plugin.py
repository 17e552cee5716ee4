"""The built-in ``mqtt`` connector type."""

from __future__ import annotations

from typing import Any

from mqferry._config.models import ConnectorConfigBase, MqttConfig
from mqferry._hookspecs import hookimpl
from mqferry._registry import ConnectorType, TypeRegister


class MqttConnectorConfig(MqttConfig, ConnectorConfigBase):
    """An extra MQTT broker connection (``connectors.mqtt.<name>``), with the common fields."""


def _factory(name: str, config: Any, ctx: Any) -> Any:
    from mqferry._mqtt.client import MqttConnector

    # An extra broker connection: publishes only (republish actions can target it).
    return MqttConnector(config=config)


@hookimpl
def mqferry_register_connector_types(register: TypeRegister) -> None:
    """Register the MQTT connector type (the top-level ``mqtt`` section uses it)."""
    from mqferry._mqtt.connect import probe

    register.add(ConnectorType("mqtt", MqttConnectorConfig, _factory, "MQTT 5 broker connection",
                               probe=probe))

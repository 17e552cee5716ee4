"""The built-in ``mqtt`` connector type."""

from __future__ import annotations

from typing import Any

from mqferry.config.models import MqttConfig
from mqferry.hookspecs import hookimpl
from mqferry.registry import ConnectorType, TypeRegister


def _factory(name: str, config: Any, ctx: Any) -> Any:
    from mqferry.mqtt.client import MqttConnector

    return MqttConnector(config=config)


@hookimpl
def mqferry_register_connector_types(register: TypeRegister) -> None:
    """Register the MQTT connector type (the top-level ``mqtt`` section uses it)."""
    from mqferry.mqtt.client import probe

    register.add(ConnectorType("mqtt", MqttConfig, _factory, "MQTT 5 broker connection",
                               probe=probe))

"""mqferry: stream MQTT data into Apache Kafka and back, through an SQL rule engine.

The public surface for plugin authors is re-exported here; everything else is private.
"""

from __future__ import annotations

from mqferry._version import __version__
from mqferry.errors import (
    ConfigError,
    DeliveryError,
    DuplicateTypeError,
    MqferryError,
    PluginError,
    TemplateError,
)
from mqferry.hookspecs import hookimpl
from mqferry.registry import ActionType, ConnectorType, SourceType
from mqferry.rules.errors import RuleCompileError, RuleError, RuleEvalError, RuleSyntaxError
from mqferry.runtime.failures import LogLimiter
from mqferry.tasks import Supervisor, cancel_task, describe
from mqferry.types import (
    Action,
    Connector,
    Delivery,
    HealthStatus,
    MqttPublisher,
    RuntimeContext,
    Source,
    Status,
)

__all__ = [
    "Action",
    "ActionType",
    "ConfigError",
    "Connector",
    "ConnectorType",
    "Delivery",
    "DeliveryError",
    "DuplicateTypeError",
    "HealthStatus",
    "LogLimiter",
    "MqferryError",
    "MqttPublisher",
    "PluginError",
    "RuleCompileError",
    "RuleError",
    "RuleEvalError",
    "RuleSyntaxError",
    "RuntimeContext",
    "Source",
    "SourceType",
    "Status",
    "Supervisor",
    "TemplateError",
    "__version__",
    "cancel_task",
    "describe",
    "hookimpl",
]

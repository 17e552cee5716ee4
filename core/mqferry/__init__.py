"""mqferry: stream MQTT data into Apache Kafka and back, through an SQL rule engine.

The public surface for plugin authors is re-exported here, and :mod:`mqferry.testing` holds the
test harness; every other module is internal (its name starts with ``_``) and may change without
notice. A test walks the plugins' sources and fails on any import of a name outside these two.
"""

from __future__ import annotations

# First: refuses compiled modules older than their sources (see mqferry._compiled).
from mqferry._compiled import StaleCompiledModule, check_compiled

# isort: split
from mqferry._buffer import DiskBufferError, DiskBufferInUseError, DiskQueue
from mqferry._cluster.transport import ClusterLog, ClusterTransport, LogRecord, SlotListener
from mqferry._config import (
    ActionConfigBase,
    ByteSize,
    ClusterConfig,
    ConnectorConfigBase,
    Duration,
    DurationS,
    Secret,
    SourceConfigBase,
    Strict,
    load_tls_files,
)
from mqferry._errors import (
    ConfigError,
    DeliveryError,
    DuplicateTypeError,
    MqferryError,
    MqttUnavailable,
    PluginError,
    TemplateError,
)
from mqferry._hookspecs import hookimpl
from mqferry._logs import RetryLog
from mqferry._metrics import Metrics, action_metrics, source_metrics
from mqferry._mqtt.strings import topic_problem as mqtt_topic_problem
from mqferry._registry import (
    ActionFactory,
    ActionRegister,
    ActionType,
    ConnectorFactory,
    ConnectorRegister,
    ConnectorType,
    FunctionRegister,
    Register,
    SourceFactory,
    SourceRegister,
    SourceType,
)
from mqferry._rules.errors import RuleCompileError, RuleError, RuleEvalError, RuleSyntaxError
from mqferry._runtime.delivery import Countdown
from mqferry._runtime.failures import LogLimiter
from mqferry._tasks import Supervisor, cancel_requests, cancel_task, describe
from mqferry._templates import MISSING, Template, check_template, to_json, to_text
from mqferry._types import (
    LOOP_MARKER,
    Action,
    Component,
    Connector,
    Delivery,
    HealthStatus,
    MqttPublisher,
    RuntimeContext,
    Source,
    Status,
)
from mqferry._version import __version__

__all__ = [
    "LOOP_MARKER",
    "MISSING",
    "Action",
    "ActionConfigBase",
    "ActionFactory",
    "ActionRegister",
    "ActionType",
    "ByteSize",
    "ClusterConfig",
    "ClusterLog",
    "ClusterTransport",
    "Component",
    "ConfigError",
    "Connector",
    "ConnectorConfigBase",
    "ConnectorFactory",
    "ConnectorRegister",
    "ConnectorType",
    "Countdown",
    "Delivery",
    "DeliveryError",
    "DiskBufferError",
    "DiskBufferInUseError",
    "DiskQueue",
    "DuplicateTypeError",
    "Duration",
    "DurationS",
    "FunctionRegister",
    "HealthStatus",
    "LogLimiter",
    "LogRecord",
    "Metrics",
    "MqferryError",
    "MqttPublisher",
    "MqttUnavailable",
    "PluginError",
    "Register",
    "RetryLog",
    "RuleCompileError",
    "RuleError",
    "RuleEvalError",
    "RuleSyntaxError",
    "RuntimeContext",
    "Secret",
    "SlotListener",
    "Source",
    "SourceConfigBase",
    "SourceFactory",
    "SourceRegister",
    "SourceType",
    "StaleCompiledModule",
    "Status",
    "Strict",
    "Supervisor",
    "Template",
    "TemplateError",
    "__version__",
    "action_metrics",
    "cancel_requests",
    "cancel_task",
    "check_compiled",
    "check_template",
    "describe",
    "hookimpl",
    "load_tls_files",
    "mqtt_topic_problem",
    "source_metrics",
    "to_json",
    "to_text",
]

"""Configuration: models, units, secrets, loading and error rendering."""

from __future__ import annotations

from mqferry._config.loader import (
    AppConfig,
    ComponentSpec,
    RuleSpec,
    load_config,
    pydantic_problems,
    validate_config,
    validate_rule,
)
from mqferry._config.models import (
    ActionConfigBase,
    ClusterConfig,
    ConnectorConfigBase,
    InlineAction,
    MqttConfig,
    RawConfig,
    RuleConfig,
    SourceConfigBase,
    Strict,
)
from mqferry._config.secrets import REDACTED, Secret
from mqferry._config.tlsfiles import load_tls_files
from mqferry._config.units import ByteSize, Duration, DurationS, parse_duration, parse_size
from mqferry._config.yamlfile import read_yaml

__all__ = [
    "REDACTED",
    "ActionConfigBase",
    "AppConfig",
    "ByteSize",
    "ClusterConfig",
    "ComponentSpec",
    "ConnectorConfigBase",
    "Duration",
    "DurationS",
    "InlineAction",
    "MqttConfig",
    "RawConfig",
    "RuleConfig",
    "RuleSpec",
    "Secret",
    "SourceConfigBase",
    "Strict",
    "load_config",
    "load_tls_files",
    "parse_duration",
    "parse_size",
    "pydantic_problems",
    "read_yaml",
    "validate_config",
    "validate_rule",
]

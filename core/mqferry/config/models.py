"""The pydantic models of mqferry's own configuration sections.

Plugin types bring their own models (see :mod:`mqferry.registry`); the bases here give them the
common fields EMQX has on every connector, action and source.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mqferry.config.secrets import Secret
from mqferry.config.units import Duration

NAME_PATTERN = r"^[A-Za-z0-9]+[A-Za-z0-9_\-.]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=255)]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConnectorConfigBase(Strict):
    """Fields every connector has."""

    enable: bool = True
    description: str = ""
    tags: list[str] = Field(default_factory=list)


class ActionConfigBase(Strict):
    """Fields every action has; ``connector`` names a connector of the type's connector type."""

    enable: bool = True
    connector: str | None = None
    description: str = ""
    tags: list[str] = Field(default_factory=list)


class SourceConfigBase(ActionConfigBase):
    """Fields every source has."""


class InlineAction(Strict):
    """An action written inside a rule, as EMQX's ``{"function": "republish", "args": {...}}``."""

    function: str
    args: dict[str, Any] = Field(default_factory=dict)


class RuleConfig(Strict):
    """One rule: its SQL and the actions its outputs go to.

    ``actions`` items are ``"<type>:<name>"`` references to configured actions, or inline actions.
    """

    sql: str
    actions: list[str | InlineAction] = Field(default_factory=list)
    enable: bool = True
    description: str = ""
    #: A display name, as EMQX's rules have (the id is the key).
    name: str = ""


class DeadLetterConfig(Strict):
    """Where MQTT messages go that a rule or an action could not process.

    ``action`` names a configured action (``<type>:<name>``): a ``kafka_producer`` action makes a
    Kafka dead-letter topic, a ``republish`` action an MQTT one. It receives, for each such
    message, one output with the message's MQTT context and why it failed (see the README,
    "Failures and dead letters"). Its own failures are counted (``dead_letter.failed``), never
    dead-lettered again.
    """

    action: str

    @field_validator("action")
    @classmethod
    def _action_id(cls, v: str) -> str:
        if not re.fullmatch(r"[^:\s]+:[^:\s]+", v):
            raise ValueError("expected an action id, written as <type>:<name>")
        return v


class MqttConfig(Strict):
    """The MQTT broker mqferry is attached to, for input (rule topics) and output (publishes).

    Defaults keep a persistent session so nothing published while mqferry is down is lost.
    """

    server: str = "127.0.0.1:1883"
    clientid: str = "mqferry"
    username: str | None = None
    password: Secret | None = None
    clean_start: bool = False
    session_expiry: Duration = 7200.0
    keepalive: Duration = 60.0
    connect_timeout: Duration = 10.0
    #: ``at_least_once``: hold each PUBACK until every matched action secured the message.
    #: ``at_most_once``: acknowledge on receipt, as EMQX does.
    delivery: Literal["at_least_once", "at_most_once"] = "at_least_once"
    #: QoS of the rule subscriptions. At-least-once needs 1.
    subscribe_qos: Literal[0, 1] = 1
    #: How many unacknowledged messages the broker may send us (MQTT 5 Receive Maximum).
    receive_maximum: int = Field(default=1000, ge=1, le=65535)
    #: Subscribe as ``$share/<group>/<filter>`` so several instances share the load.
    share_group: str | None = None
    reconnect_min: Duration = 0.5
    reconnect_max: Duration = 30.0
    #: Where messages go that a rule or an action failed; none by default (they are counted,
    #: logged and acknowledged).
    dead_letter: DeadLetterConfig | None = None

    @field_validator("server")
    @classmethod
    def _host_port(cls, v: str) -> str:
        if not re.fullmatch(r"[^:\s]+(:\d{1,5})?", v.strip()):
            raise ValueError("expected host or host:port")
        return v.strip()

    @property
    def host(self) -> str:
        """The broker host."""
        return self.server.rsplit(":", 1)[0] if ":" in self.server else self.server

    @property
    def port(self) -> int:
        """The broker port (1883 when not given)."""
        return int(self.server.rsplit(":", 1)[1]) if ":" in self.server else 1883


class LogConfig(Strict):
    """Logging."""

    level: Literal["debug", "info", "warning", "error"] = "info"


class ApiSslConfig(Strict):
    """TLS for the API listener."""

    enable: bool = False
    certfile: str | None = None
    keyfile: str | None = None
    #: When set, clients must present a certificate signed by this CA.
    cacertfile: str | None = None

    @model_validator(mode="after")
    def _files(self) -> ApiSslConfig:
        if self.enable and not (self.certfile and self.keyfile):
            raise ValueError("ssl.enable needs certfile and keyfile")
        return self


class ApiConfig(Strict):
    """The REST API: where it listens and where the hashed API keys are kept."""

    enable: bool = True
    #: Loopback by default: expose it deliberately.
    listen: str = "127.0.0.1:18083"
    ssl: ApiSslConfig = Field(default_factory=ApiSslConfig)
    #: The key store (relative paths are under ``data_dir``).
    key_store: str = "api_keys.json"
    #: Web origins allowed to call the API from a browser (a console served by another
    #: instance, ``https://console.example.com``); none by default. Read at start-up.
    cors_origins: list[str] = Field(default_factory=list)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("expected host:port")
        return v.strip()

    @property
    def host(self) -> str:
        """The address to bind."""
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """The port to bind."""
        return int(self.listen.rpartition(":")[2])


class RawConfig(Strict):
    """The file's shape before plugin types are validated: ``<kind>.<type>.<name>`` maps."""

    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    connectors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    actions: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = Field(default_factory=dict)
    rules: dict[str, RuleConfig] = Field(default_factory=dict)
    log: LogConfig = Field(default_factory=LogConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    node: str = "mqferry@localhost"
    data_dir: str = "data"

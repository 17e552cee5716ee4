"""The pydantic models of mqferry's own configuration sections.

Plugin types bring their own models (see :mod:`mqferry._registry`); the bases here give them the
common fields EMQX has on every connector, action and source.
"""

from __future__ import annotations

import re
import ssl
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mqferry._config.secrets import Secret
from mqferry._config.units import ByteSize, Duration

NAME_PATTERN = r"^[A-Za-z0-9]+[A-Za-z0-9_\-.]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=255)]

# Length limits of free-text fields: generous for people, small enough that a hostile value is
# refused by name instead of being compiled, stored and written back to the file.
#: Characters of a description.
DESCRIPTION_MAX = 10_000
#: Characters of a display name or a tag.
LABEL_MAX = 255
#: Characters of a rule's SQL.
SQL_MAX = 65_536
Description = Annotated[str, Field(max_length=DESCRIPTION_MAX)]
Label = Annotated[str, Field(max_length=LABEL_MAX)]
Sql = Annotated[str, Field(max_length=SQL_MAX)]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ConnectorConfigBase(Strict):
    """Fields every connector has."""

    enable: bool = True
    description: Description = ""
    tags: list[Label] = Field(default_factory=list)


class ActionConfigBase(Strict):
    """Fields every action has; ``connector`` names a connector of the type's connector type."""

    enable: bool = True
    connector: str | None = None
    description: Description = ""
    tags: list[Label] = Field(default_factory=list)


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

    sql: Sql
    actions: list[str | InlineAction] = Field(default_factory=list)
    enable: bool = True
    description: Description = ""
    #: A display name, as EMQX's rules have (the id is the key).
    name: Label = ""


_DNS_NAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*\.?")


TlsVersion = Literal["tlsv1.3", "tlsv1.2"]
_TLS_VERSIONS: tuple[TlsVersion, ...] = ("tlsv1.3", "tlsv1.2")


class MqttSslConfig(Strict):
    """TLS to an MQTT broker, with the field names of EMQX's client ``ssl`` options.

    File fields are paths to PEM files, read again on every connection attempt (a renewed
    certificate is picked up on the next reconnect).
    """

    enable: bool = False
    #: ``verify_peer`` checks the broker's certificate against ``cacertfile`` (or the system's
    #: CAs) and its host name; EMQX's default for clients is ``verify_none``.
    verify: Literal["verify_peer", "verify_none"] = "verify_none"
    cacertfile: str | None = None
    #: The client certificate (chain) for brokers that ask for one.
    certfile: str | None = None
    keyfile: str | None = None
    #: The password of an encrypted ``keyfile``.
    password: Secret | None = None
    #: ``auto`` sends the broker's host name (SNI) and checks the certificate against it;
    #: ``disable`` sends none and skips the host name check; any other value is sent instead and
    #: the certificate is checked against it.
    server_name_indication: str = "auto"
    versions: list[TlsVersion] = Field(default_factory=lambda: list(_TLS_VERSIONS), min_length=1)
    #: OpenSSL cipher names for TLS 1.2 (a list or a comma-separated string); empty: OpenSSL's
    #: defaults. TLS 1.3 suite names (``TLS_AES_256_GCM_SHA384``) are accepted, but Python's
    #: ``ssl`` module cannot narrow the TLS 1.3 suites: to enforce the list, use ``versions:
    #: [tlsv1.2]``.
    ciphers: list[str] = Field(default_factory=list)

    @field_validator("server_name_indication")
    @classmethod
    def _sni(cls, v: str) -> str:
        if v not in {"auto", "disable"} and not _DNS_NAME.fullmatch(v):
            raise ValueError("expected 'auto', 'disable' or a DNS host name")
        return v

    @field_validator("cacertfile", "certfile", "keyfile")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        if v is not None and v.lstrip().startswith("-----BEGIN"):
            raise ValueError("expected the path of a PEM file (inline PEM is not supported)")
        return v

    @field_validator("ciphers", mode="before")
    @classmethod
    def _cipher_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [c.strip() for c in v.split(",") if c.strip()]
        return v

    @field_validator("ciphers")
    @classmethod
    def _known_ciphers(cls, v: list[str]) -> list[str]:
        tls12 = [c for c in v if not c.startswith("TLS_")]
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        tls13 = {c["name"] for c in probe.get_ciphers() if c["protocol"] == "TLSv1.3"}
        unknown = [c for c in v if c.startswith("TLS_") and c not in tls13]
        if unknown:
            raise ValueError(f"unknown TLS 1.3 cipher suite {unknown[0]!r} "
                             f"(known: {', '.join(sorted(tls13))})")
        for name in tls12:
            try:
                probe.set_ciphers(name)
            except ssl.SSLError:
                raise ValueError(f"cipher {name!r} is unknown to OpenSSL "
                                 f"({ssl.OPENSSL_VERSION})") from None
        return v

    @model_validator(mode="after")
    def _consistent(self) -> MqttSslConfig:
        if self.keyfile and not self.certfile:
            raise ValueError("ssl.keyfile needs ssl.certfile (the client certificate)")
        if self.ciphers and "tlsv1.2" in self.versions and not any(
                not c.startswith("TLS_") for c in self.ciphers):
            raise ValueError("ssl.ciphers lists no TLS 1.2 cipher, but ssl.versions allows "
                             "tlsv1.2")
        return self


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
    #: TLS (``mqtts``); the port defaults to 8883 when it is enabled.
    ssl: MqttSslConfig = Field(default_factory=MqttSslConfig)
    #: Where messages go that a rule or an action failed; none by default (they are counted,
    #: logged and acknowledged).
    dead_letter: DeadLetterConfig | None = None

    @field_validator("server")
    @classmethod
    def _host_port(cls, v: str) -> str:
        m = re.fullmatch(r"[^:\s]+(?::(\d{1,5}))?", v.strip())
        if not m:
            raise ValueError("expected host or host:port")
        if m.group(1) is not None and not 1 <= int(m.group(1)) <= 65535:
            raise ValueError(f"port {m.group(1)} is out of range (1-65535)")
        return v.strip()

    @property
    def host(self) -> str:
        """The broker host."""
        return self.server.rsplit(":", 1)[0] if ":" in self.server else self.server

    @property
    def port(self) -> int:
        """The broker port (1883 when not given, 8883 with TLS)."""
        if ":" in self.server:
            return int(self.server.rsplit(":", 1)[1])
        return 8883 if self.ssl.enable else 1883


class LogConfig(Strict):
    """Logging: mqferry's level, the line format, levels of particular loggers."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    #: ``text``: ``time level logger: message``; ``json``: one object per line with ``time``,
    #: ``level``, ``logger``, ``message`` (and ``exception``), for log shippers.
    format: Literal["text", "json"] = "text"
    #: levels by logger name, over the defaults that keep third-party libraries quiet
    #: (``aiokafka: info`` shows aiokafka's group membership messages again).
    levels: dict[str, Literal["debug", "info", "warning", "error", "critical"]] = Field(
        default_factory=dict)


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
    #: The key store; when not set, ``api_keys.json`` beside the config file. A relative path
    #: given here is under ``data_dir``.
    key_store: str = "api_keys.json"
    #: Web origins allowed to call the API from a browser (a console served by another
    #: instance, ``https://console.example.com``); none by default. Read at start-up.
    cors_origins: list[str] = Field(default_factory=list)
    #: The largest request body; a larger one is refused (413) before it is read into memory.
    max_body_size: Annotated[ByteSize, Field(ge=1024)] = 1024 * 1024
    #: The deepest nesting of JSON objects and arrays in a request body (400 beyond it). Kept
    #: well under Python's recursion limit, which validation and the write-back walk against.
    max_json_depth: int = Field(default=64, ge=1, le=200)
    #: Directories whose files a client of the API may name as a TLS ``cacertfile``,
    #: ``certfile`` or ``keyfile`` (absolute paths); none by default: the API keeps the paths the
    #: config file names, and only the file names others. Every file in them, and every file a
    #: symbolic link in them leads to, may be used by any key holder, for any host.
    ssl_file_dirs: list[str] = Field(default_factory=list)

    @field_validator("ssl_file_dirs")
    @classmethod
    def _absolute_dirs(cls, v: list[str]) -> list[str]:
        for d in v:
            if not d.startswith("/"):
                raise ValueError(f"expected absolute paths, got {d!r}")
        return v

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


class ClusterConfig(BaseModel):
    """``cluster``: the nodes sharing this configuration and the load, coordinated through Kafka.

    Only ``name`` and the timings are the core's; the Kafka connection (``bootstrap_hosts``,
    ``authentication``, ``ssl``, ... with the Kafka connector's field names) is validated by the
    plugin that provides the cluster transport (``mqferry_cluster``).
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    #: The cluster's id: its Kafka topics are ``mqferry-<name>-<what>``, its MQTT share group and
    #: session client ids start with it.
    name: Name
    #: How many persistent MQTT sessions share the rule subscriptions; the live nodes divide
    #: them among themselves. More slots than nodes lets a dead node's share spread over several.
    session_slots: int = Field(default=8, ge=1, le=256)
    #: How often a node tells the others it is alive (and its metrics).
    heartbeat_interval: Duration = 2.0
    #: A node silent this long is gone: its session slots move to the live nodes.
    node_timeout: Duration = 10.0

    @model_validator(mode="after")
    def _timeout_after_heartbeats(self) -> ClusterConfig:
        if self.node_timeout < 2 * self.heartbeat_interval:
            raise ValueError("node_timeout must be at least twice heartbeat_interval")
        return self

    def transport_options(self) -> dict[str, Any]:
        """The fields the cluster transport validates (everything but the core's own)."""
        return dict(self.model_extra or {})


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
    #: Several nodes sharing configuration and load (see :class:`ClusterConfig`); none: one node.
    cluster: ClusterConfig | None = None

"""Kafka connection settings shared by the producer and consumer connectors (EMQX's fields)."""

from __future__ import annotations

import re
import ssl
from typing import Any, Literal

from pydantic import Field, field_validator

from mqferry import ByteSize, ConnectorConfigBase, Duration, Secret, Strict, load_tls_files


class SaslAuth(Strict):
    """Username and password authentication (SASL PLAIN or SCRAM)."""

    mechanism: Literal["plain", "scram_sha_256", "scram_sha_512"]
    username: str
    password: Secret


class TlsOptions(Strict):
    """TLS to the Kafka brokers."""

    enable: bool = False
    verify: Literal["verify_peer", "verify_none"] = "verify_none"
    cacertfile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    password: Secret | None = None
    #: ``auto`` sends the broker's host name; ``disable`` sends none (and skips the host name
    #: check); any other value is sent instead and the certificate is checked against it.
    server_name_indication: str = "auto"

    @field_validator("server_name_indication")
    @classmethod
    def _sni(cls, v: str) -> str:
        if v not in {"auto", "disable"} and not re.fullmatch(
                r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
                r"(\.[A-Za-z0-9]([A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*\.?", v):
            raise ValueError("expected 'auto', 'disable' or a DNS host name")
        return v


class SocketOptions(Strict):
    """TCP socket options."""

    sndbuf: ByteSize = 1024 * 1024
    recbuf: ByteSize = 1024 * 1024
    nodelay: bool = True
    tcp_keepalive: str = "none"

    @field_validator("tcp_keepalive")
    @classmethod
    def _keepalive(cls, v: str) -> str:
        if v != "none" and not re.fullmatch(r"\s*\d+\s*,\s*\d+\s*,\s*\d+\s*,?\s*", v):
            raise ValueError("expected 'none' or 'Idle,Interval,Probes' such as '240,30,5'")
        return v


class ResourceOpts(Strict):
    """How often the connector's health is checked."""

    health_check_interval: Duration = 15.0
    health_check_timeout: Duration = 60.0
    start_after_created: bool = True
    start_timeout: Duration = 5.0


class KafkaConnectorConfig(ConnectorConfigBase):
    """A Kafka cluster connection, as EMQX's ``kafka_producer`` / ``kafka_consumer`` connector."""

    bootstrap_hosts: str
    connect_timeout: Duration = 5.0
    min_metadata_refresh_interval: Duration = 3.0
    metadata_request_timeout: Duration = 5.0
    request_timeout: Duration = 30.0
    authentication: Literal["none"] | SaslAuth = "none"
    ssl: TlsOptions = Field(default_factory=TlsOptions)
    socket_opts: SocketOptions = Field(default_factory=SocketOptions)
    resource_opts: ResourceOpts = Field(default_factory=ResourceOpts)

    @field_validator("bootstrap_hosts")
    @classmethod
    def _hosts(cls, v: str) -> str:
        hosts = [h.strip() for h in v.split(",") if h.strip()]
        if not hosts:
            raise ValueError("expected a comma-separated list of host:port")
        for h in hosts:
            m = re.fullmatch(r"(?:[A-Za-z0-9_.\-]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?", h)
            if not m:
                raise ValueError(f"invalid host {h!r}: expected host:port")
            if m.group(1) is not None and not 1 <= int(m.group(1)) <= 65535:
                raise ValueError(f"invalid host {h!r}: port {m.group(1)} is out of range "
                                 "(1-65535)")
        return ",".join(hosts)

    def servers(self) -> list[str]:
        """``host:port`` items, with Kafka's default port 9092 where none is given."""
        hosts = self.bootstrap_hosts.split(",")
        return [h if re.search(r":\d+$", h) else f"{h}:9092" for h in hosts]


class _ServerNameContext(ssl.SSLContext):
    """A client context that sends a fixed server name (SNI) whatever host it connects to.

    The Kafka client connects with the broker's address as the server name; asyncio passes it to
    :meth:`wrap_bio`, which puts the configured name in its place (``None``: no SNI and no
    host name check).
    """

    server_name: str | None = None

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
                 server_side: bool = False, server_hostname: str | bytes | None = None,
                 session: ssl.SSLSession | None = None) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name, session)


def _ssl_context(cfg: TlsOptions) -> ssl.SSLContext:
    """The client context of ``cfg``; files are read now.

    Raises:
        ConfigError: a file cannot be used (the problem names the field and the file, never why:
            that is logged, see :func:`mqferry.load_tls_files`).
    """
    sni = cfg.server_name_indication
    ctx = (ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT) if sni == "auto"
           else _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT))
    if sni == "disable":
        ctx.check_hostname = False
    elif sni != "auto":
        assert isinstance(ctx, _ServerNameContext)
        ctx.server_name = sni
    if not cfg.cacertfile:
        ctx.load_default_certs()  # with a cacertfile, only its CAs are trusted
    load_tls_files(ctx, cacertfile=cfg.cacertfile, certfile=cfg.certfile, keyfile=cfg.keyfile,
                   password=cfg.password.get_secret_value() if cfg.password else None)
    if cfg.verify == "verify_none":
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_options(cfg: KafkaConnectorConfig, client_id: str) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer, consumer and admin clients."""
    opts: dict[str, Any] = {
        "bootstrap_servers": cfg.servers(),
        "client_id": client_id,
        "request_timeout_ms": int(cfg.request_timeout * 1000),
        "metadata_max_age_ms": max(int(cfg.min_metadata_refresh_interval * 1000), 1000) * 100,
        "retry_backoff_ms": 100,
    }
    tls = cfg.ssl.enable
    if isinstance(cfg.authentication, SaslAuth):
        auth = cfg.authentication
        opts["security_protocol"] = "SASL_SSL" if tls else "SASL_PLAINTEXT"
        opts["sasl_mechanism"] = {
            "plain": "PLAIN",
            "scram_sha_256": "SCRAM-SHA-256",
            "scram_sha_512": "SCRAM-SHA-512",
        }[auth.mechanism]
        opts["sasl_plain_username"] = auth.username
        opts["sasl_plain_password"] = auth.password.get_secret_value()
    elif tls:
        opts["security_protocol"] = "SSL"
    if tls:
        opts["ssl_context"] = _ssl_context(cfg.ssl)
    return opts

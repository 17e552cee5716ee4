"""Opening an MQTT 5 session: TCP or TLS, CONNECT, CONNACK; and the "test connection" probe."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from mqferry._config.models import MqttConfig
from mqferry._errors import ConfigError, MqttUnavailable
from mqferry._mqtt import codec, control
from mqferry._mqtt.codec import InMessage
from mqferry._mqtt.control import Connack
from mqferry._mqtt.protocol import MqttProtocol
from mqferry._mqtt.tls import explain, server_hostname, ssl_context
from mqferry._types import HealthStatus, Status

__all__ = ["open_session", "probe", "session_expiry"]


def session_expiry(config: MqttConfig) -> int:
    """The CONNECT's session expiry for ``config`` (``inf`` is "never")."""
    expiry = config.session_expiry
    return 0xFFFFFFFF if expiry == float("inf") else int(expiry)


async def open_session(
    config: MqttConfig,
    *,
    client_id: str,
    clean_start: bool,
    session_expiry: int,
    on_publish: Callable[[InMessage], None],
    on_released: Callable[[], None] = lambda: None,
    on_lost: Callable[[], None] = lambda: None,
) -> tuple[MqttProtocol, Connack]:
    """Connect to ``config``'s broker and open a session; keepalive runs from here on.

    Raises:
        ConfigError: a TLS file cannot be used.
        MqttUnavailable: no connection or no session, with the reason (a socket or TLS error,
            ``Operation timed out``, or ``Connection refused: <the CONNACK's reason>``).
    """
    session = f"{config.server} as {client_id}"
    tls: ssl.SSLContext | None = ssl_context(config.ssl) if config.ssl.enable else None
    loop = asyncio.get_running_loop()
    password = config.password.get_secret_value() if config.password else None
    hello = control.connect_packet(
        client_id, keepalive=max(1, int(config.keepalive)), clean_start=clean_start,
        session_expiry=session_expiry, receive_maximum=config.receive_maximum,
        username=config.username, password=password)
    proto: MqttProtocol | None = None

    def make() -> MqttProtocol:
        nonlocal proto
        proto = MqttProtocol(on_publish=on_publish, on_released=on_released, on_lost=on_lost)
        return proto

    try:
        async with asyncio.timeout(config.connect_timeout):
            await loop.create_connection(
                make, config.host, config.port, ssl=tls,
                server_hostname=server_hostname(config.ssl, config.host) if tls else None)
            assert proto is not None
            proto.write(hello)
            proto.flush()
            connack = await proto.connack
    except TimeoutError:
        if proto is not None:
            proto.close("Operation timed out", abort=True)
        raise MqttUnavailable("Operation timed out", session=session) from None
    except OSError as exc:  # refused, unreachable, TLS handshake (ssl.SSLError is an OSError)
        if proto is not None:
            proto.close(str(exc), abort=True)
        raise MqttUnavailable(str(exc) or repr(exc), session=session) from None
    except codec.PacketError as exc:
        assert proto is not None
        proto.close(str(exc), abort=True)
        raise MqttUnavailable(f"malformed CONNACK: {exc}", session=session) from None
    if connack.reason >= 0x80:
        proto.close("refused", abort=True)
        why = codec.reason_name(codec.CONNACK, connack.reason)
        raise MqttUnavailable(
            f"Connection refused: {why} (code {connack.reason})", session=session)
    proto.start_keepalive(connack.get("ServerKeepAlive", max(1, int(config.keepalive))))
    return proto, connack


async def probe(config: MqttConfig) -> HealthStatus:
    """Connect and disconnect once ("test connection"), under a separate client id.

    The probe never touches the persistent session of ``config.clientid``.
    """
    try:
        proto, _ = await open_session(config, client_id=f"{config.clientid}-probe",
                                      clean_start=True, session_expiry=0,
                                      on_publish=lambda message: None)
    except ConfigError as exc:
        return HealthStatus(Status.DISCONNECTED, f"{config.server}: {exc}")
    except MqttUnavailable as exc:
        return HealthStatus(Status.DISCONNECTED, f"{config.server}: {explain(exc)}")
    proto.disconnect()
    return HealthStatus(Status.CONNECTED)


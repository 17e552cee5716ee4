"""The MQTT connector: one MQTT 5 session for rule input and for publishing.

Incoming messages are handed to a synchronous handler straight from the socket reader of
:mod:`mqferry.mqtt.paho_io` (no queue, no copy); QoS 2 messages come through paho's callback.
Each QoS 1/2 message's ack waits for its :class:`~mqferry.mqtt.acks.Ticket`, in arrival
order; with ``delivery: at_most_once`` the runtime releases tickets at once (or after a bounded
wait, see :mod:`mqferry.runtime.ackwait`). The session is persistent by default (stable client
id, clean start off, a session expiry), so the broker keeps and redelivers what was not
acknowledged while mqferry was away.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mqferry.config.models import MqttConfig
from mqferry.errors import ConfigError, DeliveryError
from mqferry.logs import RetryLog
from mqferry.mqtt.acks import AckWindow, Ticket
from mqferry.mqtt.paho_io import (
    InMessage,
    coalesce_writes,
    puback_packets,
    publish_packet,
    queue_packet,
    read_packets,
)
from mqferry.mqtt.tls import explain, ssl_context
from mqferry.tasks import Supervisor, describe
from mqferry.types import HealthStatus, Status

log = logging.getLogger(__name__)
_PAHO_LOG = logging.getLogger("mqferry.mqtt.paho")

#: A publish waiting for room in the in-flight window: topic, payload, qos, retain, properties and
#: the future to complete.
_Outgoing = tuple[str, bytes, int, bool, Properties | None, "asyncio.Future[None]"]

#: An incoming message: :class:`InMessage` (QoS 0/1) or paho's ``MQTTMessage`` (QoS 2); both
#: have ``topic``, ``payload``, ``qos``, ``retain``, ``dup``, ``mid`` and ``properties``.
Incoming = InMessage | paho.MQTTMessage

#: Receives each message and its ticket (``None`` for QoS 0).
MessageHandler = Callable[[Incoming, Ticket | None], None]

_PROPERTY_NAMES = {
    "Payload-Format-Indicator": "PayloadFormatIndicator",
    "Message-Expiry-Interval": "MessageExpiryInterval",
    "Content-Type": "ContentType",
    "Response-Topic": "ResponseTopic",
    "Correlation-Data": "CorrelationData",
    "Topic-Alias": "TopicAlias",
}


def publish_properties(props: Mapping[str, Any] | None) -> Properties | None:
    """paho publish properties from a mapping of MQTT 5 spec names.

    ``User-Property`` may be a mapping or a list of ``(key, value)`` pairs.

    Raises:
        ValueError: an unknown property name.
    """
    if not props:
        return None
    out = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in props.items():
        if name == "User-Property":
            pairs = value.items() if isinstance(value, Mapping) else value
            out.UserProperty = [(str(k), str(v)) for k, v in pairs]
        elif name in _PROPERTY_NAMES:
            if name == "Correlation-Data" and isinstance(value, str):
                setattr(out, _PROPERTY_NAMES[name], value.encode())
            else:
                setattr(out, _PROPERTY_NAMES[name], value)
        else:
            raise ValueError(f"unknown MQTT 5 publish property {name!r}")
    return out


class _Client(aiomqtt.Client):
    """aiomqtt's client, with incoming messages handed straight to our handler.

    Publishes started with :meth:`MqttConnector.publish_nowait` complete a future from paho's
    ``on_publish`` callback instead of an awaited event, so a publish costs no task.
    """

    def __init__(self, handler: Callable[[Incoming], None],
                 released: Callable[[], None], **kwargs: Any) -> None:
        self._mqferry_handler = handler
        self._mqferry_released = released
        self._mqferry_publishes: dict[int, asyncio.Future[None]] = {}
        super().__init__(**kwargs)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._mqferry_handler(message)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int,
                    reason_code: ReasonCode, properties: Properties) -> None:
        future = self._mqferry_publishes.pop(mid, None)
        if future is None:
            super()._on_publish(client, userdata, mid, reason_code, properties)
            return
        self._mqferry_released()
        if not future.done():
            if reason_code.is_failure:
                future.set_exception(DeliveryError(
                    "failed.refused", f"the MQTT broker refused the publish: {reason_code}"))
            else:
                future.set_result(None)

    def on_puback(self, mid: int, reason_code: int) -> bool:
        """A PUBACK from :mod:`mqferry.mqtt.paho_io`'s reader: ``True`` if it was ours."""
        future = self._mqferry_publishes.pop(mid, None)
        if future is None:
            return False
        self._mqferry_released()
        if not future.done():
            if reason_code >= 0x80:
                why = ReasonCode(PacketTypes.PUBACK, identifier=reason_code)
                future.set_exception(DeliveryError(
                    "failed.refused", f"the MQTT broker refused the publish: {why}"))
            else:
                future.set_result(None)
        return True

    def fail_publishes(self, reason: str) -> int:
        """Fail every publish still waiting for its ack (the session is gone)."""
        pending, self._mqferry_publishes = self._mqferry_publishes, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(aiomqtt.MqttError(reason))
        return len(pending)


class MqttConnector:
    """The MQTT connection mqferry is attached to.

    Args:
        config: the ``mqtt`` section.
        handler: called for each incoming message, synchronously, in the event loop.
    """

    def __init__(self, *, config: MqttConfig, handler: MessageHandler | None = None) -> None:
        self.config = config
        self._handler = handler
        self._filters: set[str] = set()
        self._client: _Client | None = None
        self._task = Supervisor(f"mqferry[mqtt:{config.clientid}]", self._run,
                                on_failure=self._run_failed)
        self._connected = asyncio.Event()
        self._stopping = False
        self.acks = AckWindow(self._send_acks)
        # Outgoing QoS 1/2 publishes in flight are limited here, not by paho: paho rescans every
        # queued message on each PUBACK (quadratic), we queue in O(1).
        self._out_free = config.receive_maximum
        self._out_backlog: deque[_Outgoing] = deque()
        self._status = HealthStatus(Status.STOPPED)
        self.connects = 0
        #: The last failed socket read of the current attempt: it says more than aiomqtt's
        #: "Operation timed out" when a broker rejects the TLS session after the handshake.
        self._read_error: OSError | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background; never raises because the broker is down."""
        if not self._task.running:
            self._stopping = False
            self._status = HealthStatus(Status.CONNECTING)
            self._task.start()

    async def stop(self) -> None:
        """Disconnect (unacknowledged messages stay with the broker). Idempotent."""
        self._stopping = True
        await self._task.stop()
        self._connected.clear()
        self._status = HealthStatus(Status.STOPPED)

    def _run_failed(self, exc: BaseException, delay: float) -> None:
        self._connected.clear()
        self._status = HealthStatus(
            Status.DISCONNECTED,
            f"connection task failed: {describe(exc)}; restarting in {delay:.1f}s")

    async def health(self) -> HealthStatus:
        """``connected``, or ``connecting`` with the last error (``disconnected`` while the
        connection task restarts after a failure)."""
        return self._status

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the session is up and subscribed."""
        await asyncio.wait_for(self._connected.wait(), timeout)

    @property
    def is_connected(self) -> bool:
        """Whether the session is up."""
        return self._connected.is_set()

    # -- subscriptions ---------------------------------------------------------------------

    def _wire(self, flt: str) -> str:
        group = self.config.share_group
        return f"$share/{group}/{flt}" if group and not flt.startswith("$") else flt

    async def set_subscriptions(self, filters: Iterable[str]) -> None:
        """Subscribe to exactly ``filters`` (the enabled rules' topic filters)."""
        new = set(filters)
        added, removed = new - self._filters, self._filters - new
        self._filters = new
        client = self._client
        if client is None or not self._connected.is_set():
            return  # applied on (re)connect
        if removed:
            for flt in sorted(removed):
                await client.unsubscribe(self._wire(flt))
        if added:
            await self._subscribe(client, added)

    async def _subscribe(self, client: _Client, filters: Iterable[str]) -> None:
        qos = int(self.config.subscribe_qos)
        topics: list[tuple[str, int]] = [(self._wire(f), qos) for f in sorted(filters)]
        if topics:
            await client.subscribe(topics)
            log.info("subscribed to %s", ", ".join(t for t, _ in topics))

    # -- publishing --------------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish; returns when the broker acknowledged it (QoS 1/2). Waits for a connection.

        Raises:
            aiomqtt.MqttError: the connection dropped before the broker acknowledged.
        """
        while True:
            await self._connected.wait()
            if self._client is None:
                continue
            await self.publish_nowait(topic, payload, qos=qos, retain=retain,
                                      properties=properties)
            return

    def publish_nowait(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
    ) -> asyncio.Future[None]:
        """Start a publish on the current session and return at once.

        The future completes when the broker acknowledged the publish (QoS 1/2) or it was
        written (QoS 0). It fails with :class:`aiomqtt.MqttError` when the session drops first
        (publish again after :meth:`wait_connected`), and with
        :class:`~mqferry.errors.DeliveryError` when the broker's PUBACK carries an error code.

        Raises:
            aiomqtt.MqttError: the session is not up.
            ValueError: an invalid topic or property.
        """
        client = self._client
        if client is None or not self._connected.is_set():
            raise aiomqtt.MqttError("not connected to the MQTT broker")
        props = publish_properties(properties)
        if not topic or "+" in topic or "#" in topic:
            raise ValueError(f"invalid MQTT topic to publish to: {topic!r}")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if qos > 0:
            if self._out_free <= 0:
                self._out_backlog.append((topic, payload, qos, retain, props, future))
                return future
            self._out_free -= 1
        self._send(client, (topic, payload, qos, retain, props, future))
        return future

    def _send(self, client: _Client, out: _Outgoing) -> None:
        topic, payload, qos, retain, props, future = out
        if qos < 2:  # encoded here: paho's publish() costs several times more per message
            paho_client = client._client
            mid = paho_client._mid_generate() if qos else 0
            try:
                packet = publish_packet(topic, payload, qos, retain, mid=mid, properties=props)
            except ValueError as exc:
                if qos:
                    self._out_free += 1
                future.set_exception(exc)
                return
            if qos:
                client._mqferry_publishes[mid] = future
            queue_packet(paho_client, packet)
            if not qos:
                future.set_result(None)
            return
        try:
            info = client._client.publish(topic, payload, qos, retain, props)
        except ValueError as exc:  # paho's checks (size, encoding): fail this publish only
            if qos > 0:
                self._out_free += 1
            future.set_exception(exc)
            return
        if info.rc != paho.MQTT_ERR_SUCCESS:
            if qos > 0:
                self._out_free += 1
            future.set_exception(aiomqtt.MqttCodeError(info.rc, "could not publish"))
        elif info.is_published():
            future.set_result(None)
        else:
            client._mqferry_publishes[info.mid] = future

    def _released(self) -> None:
        self._out_free += 1
        client, backlog = self._client, self._out_backlog
        while backlog and self._out_free > 0 and client is not None:
            self._out_free -= 1
            self._send(client, backlog.popleft())

    # -- internals ---------------------------------------------------------------------------

    def _send_acks(self, acks: list[tuple[int, int]]) -> None:
        client = self._client
        if client is None:
            return
        paho_client = client._client
        if all(qos == 1 for _, qos in acks):  # one queued packet for the whole run
            paho_client._packet_queue(0x40, puback_packets(mid for mid, _ in acks), 0, 0)
            return
        for mid, qos in acks:
            paho_client.ack(mid, qos)

    def _on_message(self, message: Incoming) -> None:
        handler = self._handler
        if isinstance(message, InMessage) and message.raw_topic:
            log.warning("dropped an MQTT message whose topic is not valid UTF-8: %r",
                        message.raw_topic)
            self._ack_now(message)
            return
        if message.qos > 0:
            ticket = self.acks.open(message.mid, message.qos)
            if handler is None:
                ticket.seal()
                return
            handler(message, ticket)
            return
        if handler is not None:
            handler(message, None)

    def _ack_now(self, message: Incoming) -> None:
        if message.qos == 0:
            return
        self.acks.open(message.mid, message.qos).seal()  # in order with the acks still pending

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        expiry = self.config.session_expiry
        props.SessionExpiryInterval = 0xFFFFFFFF if expiry == float("inf") else int(expiry)
        props.ReceiveMaximum = self.config.receive_maximum
        return props

    def _make_client(self) -> _Client:
        """A client for one connection attempt.

        Raises:
            ConfigError: a TLS file cannot be used.
        """
        cfg = self.config
        password = cfg.password.get_secret_value() if cfg.password else None
        client = _Client(
            self._on_message,
            self._released,
            hostname=cfg.host,
            port=cfg.port,
            identifier=cfg.clientid,
            username=cfg.username,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=cfg.clean_start,
            keepalive=max(1, int(cfg.keepalive)),
            timeout=cfg.connect_timeout,
            properties=self._connect_properties(),
            max_inflight_messages=0,  # unlimited in paho: see _out_free
            logger=_PAHO_LOG,
            **tls_options(cfg),
        )
        client._client.manual_ack_set(True)
        self._read_error = None
        read_packets(client._client, self._on_message, client.on_puback,
                     on_error=self._on_read_error)
        coalesce_writes(client._client)
        if not _PAHO_LOG.isEnabledFor(logging.DEBUG):
            # paho logs every packet it sends and receives (at debug level); handing each to
            # the logging module is a measurable share of each packet's cost
            client._client.disable_logger()
        return client

    def _on_read_error(self, exc: OSError) -> None:
        self._read_error = exc

    async def _run(self) -> None:
        delay = self.config.reconnect_min
        cfg = self.config
        retries = RetryLog(log, f"MQTT broker {cfg.server}")
        while not self._stopping:
            try:
                client = self._make_client()
            except ConfigError as exc:  # a TLS file missing or unusable: it may be fixed later
                self._status = HealthStatus(Status.CONNECTING, str(exc))
                pause = delay * (0.5 + random.random() / 2)
                retries.failed(str(exc), pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, cfg.reconnect_max)
                continue
            try:
                async with client:
                    self._client = client
                    self.connects += 1
                    await self._subscribe(client, self._filters)
                    self._status = HealthStatus(Status.CONNECTED)
                    self._connected.set()
                    log.info("connected to MQTT broker %s as %r", cfg.server, cfg.clientid)
                    retries.reset()
                    delay = cfg.reconnect_min
                    # Our handler takes messages directly, so this only waits for a disconnect.
                    async for _ in client.messages:
                        pass
            except aiomqtt.MqttError as exc:
                self._connected.clear()
                self._client = None
                lost = self.acks.reset()
                reason = explain(self._read_error or exc)
                self._status = HealthStatus(Status.CONNECTING, reason)
                if lost:
                    log.warning("MQTT connection lost with %d unacknowledged messages; "
                                "the broker will redeliver them", lost)
                pause = delay * (0.5 + random.random() / 2)
                retries.failed(reason, pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, cfg.reconnect_max)
            finally:
                self._connected.clear()
                self._client = None
                reason = "the MQTT connection was lost before the broker's ack"
                client.fail_publishes(reason)
                backlog, self._out_backlog = self._out_backlog, deque()
                for *_, future in backlog:
                    if not future.done():
                        future.set_exception(aiomqtt.MqttError(reason))
                self._out_free = cfg.receive_maximum


def tls_options(config: MqttConfig) -> dict[str, Any]:
    """aiomqtt's TLS arguments for ``config`` (none when ``ssl.enable`` is off).

    Raises:
        ConfigError: a TLS file cannot be used.
    """
    if not config.ssl.enable:
        return {}
    ctx = ssl_context(config.ssl)
    # paho checks the host name itself (with ssl.match_hostname, gone in Python 3.12) unless
    # told the context does: "insecure" exactly when the context checks no host name.
    return {"tls_context": ctx, "tls_insecure": not ctx.check_hostname}


async def probe(config: MqttConfig) -> HealthStatus:
    """Connect and disconnect once ("test connection"), under a separate client id.

    The probe never touches the persistent session of ``config.clientid``.
    """
    password = config.password.get_secret_value() if config.password else None
    read_errors: list[OSError] = []
    try:
        client = aiomqtt.Client(
            hostname=config.host, port=config.port, identifier=f"{config.clientid}-probe",
            username=config.username, password=password, protocol=aiomqtt.ProtocolVersion.V5,
            timeout=config.connect_timeout, **tls_options(config),
        )
        # The connector's reader, for the same reading path and its read errors.
        read_packets(client._client, None, on_error=read_errors.append)
        async with client:
            pass
    except ConfigError as exc:
        return HealthStatus(Status.DISCONNECTED, f"{config.server}: {exc}")
    except aiomqtt.MqttError as exc:
        why = explain(read_errors[-1] if read_errors else exc)
        return HealthStatus(Status.DISCONNECTED, f"{config.server}: {why}")
    return HealthStatus(Status.CONNECTED)

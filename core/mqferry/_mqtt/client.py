"""The MQTT connector: one MQTT 5 session for rule input and for publishing.

The connection is ours end to end (:mod:`mqferry._mqtt.protocol` on the event loop's transport):
incoming messages are handed to a synchronous handler straight from the read (no queue, no
copy). Each QoS 1 message's ack waits for its :class:`~mqferry._mqtt.acks.Ticket`, in arrival
order; with ``delivery: at_most_once`` the runtime releases tickets at once (or after a bounded
wait, see :mod:`mqferry._runtime.ackwait`). The session is persistent by default (stable client
id, clean start off, a session expiry), so the broker keeps and redelivers what was not
acknowledged while mqferry was away.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from mypy_extensions import mypyc_attr

from mqferry._config.models import MqttConfig
from mqferry._errors import ConfigError, MqttUnavailable
from mqferry._logs import RetryLog
from mqferry._metrics import Metrics
from mqferry._mqtt.acks import AckWindow
from mqferry._mqtt.codec import Incoming, InMessage
from mqferry._mqtt.connect import open_session, probe, session_expiry
from mqferry._mqtt.outbox import Outbox, future_settler
from mqferry._mqtt.properties import publish_properties
from mqferry._mqtt.protocol import MqttProtocol, Settled
from mqferry._mqtt.subscriptions import Subscriber
from mqferry._mqtt.tls import explain
from mqferry._runtime.delivery import Ticket
from mqferry._runtime.failures import LogLimiter
from mqferry._tasks import Supervisor, describe
from mqferry._types import HealthStatus, Status

__all__ = ["MQTT_COUNTERS", "Incoming", "MessageHandler", "MqttConnector", "mqtt_metrics", "probe",
           "publish_properties"]

log = logging.getLogger(__name__)

#: The reason code of a DISCONNECT sent because another client connected with the client id.
SESSION_TAKEN_OVER = 0x8E

#: A connection that lasted this long (seconds) resets the reconnect back-off; one the broker
#: ends sooner (a session taken over, for one) lets it grow.
STABLE_AFTER = 5.0

#: Receives each message and its ticket (``None`` for QoS 0).
MessageHandler = Callable[[Incoming, Ticket | None], None]

#: The counters of the MQTT sessions (component ``mqtt``): messages from the broker dropped
#: without reaching the rules, and why (``malformed``: a topic that is not UTF-8, properties that
#: cannot be decoded).
MQTT_COUNTERS = ("dropped", "dropped.malformed")


def mqtt_metrics() -> Metrics:
    """The metrics of MQTT sessions (:data:`MQTT_COUNTERS`), component id ``mqtt``."""
    return Metrics("mqtt", MQTT_COUNTERS)


#: Seconds an at-most-once ack may wait for others to leave with while fewer than 64 are
#: pending. At 2000 msg/s one socket write per message made at-most-once use 1.8x the CPU of
#: at-least-once (measured, py-spy: a quarter of its busy time in that write).
ACK_LINGER = 0.004


@mypyc_attr(allow_interpreted_subclasses=True)
class MqttConnector:
    """The MQTT connection mqferry is attached to.

    Args:
        config: the ``mqtt`` section.
        handler: called for each incoming message, synchronously, in the event loop.

    Attributes:
        metrics: where the session counts what it drops (:data:`MQTT_COUNTERS`); an app gives
            all its sessions its one (:attr:`mqferry._runtime.App.mqtt_metrics`).
        subscriber: subscribes the session, with an identifier per filter; it keeps what the
            broker may still hold of an earlier run's (an app gives it a file in its data
            directory).
    """

    def __init__(self, *, config: MqttConfig, handler: MessageHandler | None = None) -> None:
        self.config = config
        self.metrics = mqtt_metrics()
        self._limiter = LogLimiter(log)
        self._session = f"{config.server} as {config.clientid}"
        self._handler = handler
        self._filters: set[str] = set()
        self.subscriber = Subscriber(config)
        # Read for every message: the subscriber's own set and map (kept, edited in place).
        self._refused = self.subscriber.refused
        self._routes = self.subscriber.ids.routes
        self._proto: MqttProtocol | None = None
        self._task = Supervisor(f"mqferry[mqtt:{config.clientid}]", self._run,
                                on_failure=self._run_failed)
        self._connected = asyncio.Event()
        self._stopping = False
        # At most once, each message is acknowledged as it arrives: a trickle's acks wait up to
        # ACK_LINGER to leave in runs (at least once, the acks of a Kafka batch are a run).
        at_most_once = config.delivery == "at_most_once"
        self.acks = AckWindow(self._send_acks, deferred=True,
                              linger=ACK_LINGER if at_most_once else 0.0,
                              linger_below=max(1, min(64, config.receive_maximum // 2)))
        self._outbox = Outbox(config.receive_maximum, self._session)
        self._status = HealthStatus(Status.STOPPED)
        self.connects = 0

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
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    @property
    def is_connected(self) -> bool:
        """Whether the session is up."""
        return self._connected.is_set()

    # -- subscriptions ---------------------------------------------------------------------

    async def set_subscriptions(self, filters: Iterable[str]) -> None:
        """Subscribe to exactly ``filters`` (the enabled rules' topic filters)."""
        new = set(filters)
        added, removed = new - self._filters, self._filters - new
        self._filters = new
        proto = self._proto
        if proto is None or not self._connected.is_set():
            self.subscriber.drop(removed)  # unsubscribed on (re)connect if the broker kept them
            return
        # Subscribe first: a message matching both an old and a new filter is never in a gap
        # with neither subscribed (it may come twice meanwhile, which at-least-once allows).
        if added:
            await self._subscribe(proto, added)
        if removed:
            await self.subscriber.unsubscribe(proto, self.subscriber.drop(removed))

    async def _subscribe(self, proto: MqttProtocol, filters: Iterable[str]) -> None:
        await self.subscriber.subscribe(proto, filters)

    # -- publishing --------------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        payload: bytes | bytearray | memoryview,
        *,
        qos: int = 0,
        retain: bool | int = False,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish; returns when the broker acknowledged it (QoS 1/2). Waits for a connection.

        Raises:
            MqttUnavailable: the connection dropped before the broker acknowledged.
        """
        while True:
            await self._connected.wait()
            if self._proto is None:
                continue
            await self.publish_nowait(topic, payload, qos=qos, retain=retain,
                                      properties=properties)
            return

    def publish_nowait(
        self,
        topic: str,
        payload: bytes | bytearray | memoryview,
        *,
        qos: int = 0,
        retain: bool | int = False,
        properties: Mapping[str, Any] | None = None,
    ) -> asyncio.Future[None]:
        """Start a publish on the current session and return at once.

        The future completes when the broker acknowledged the publish (QoS 1/2) or it was
        written (QoS 0). It fails with :class:`MqttUnavailable` when the session drops first
        (publish again after :meth:`wait_connected`), and with
        :class:`~mqferry._errors.DeliveryError` when the broker's ack carries an error code.

        Raises:
            MqttUnavailable: the session is not up.
            ValueError: an invalid topic or property.
        """
        self._session_up()  # before the future: raised without a running loop too
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.publish_with(topic, payload, future_settler(future), qos=qos, retain=retain,
                          properties=properties)
        return future

    def _session_up(self) -> MqttProtocol:
        """The connection of the session, which is up.

        Raises:
            MqttUnavailable: the session is not up.
        """
        proto = self._proto
        if proto is None or not self._connected.is_set():
            raise MqttUnavailable("not connected to the MQTT broker", session=self._session)
        return proto

    def publish_with(
        self,
        topic: str,
        payload: bytes | bytearray | memoryview,
        settled: Settled,
        *,
        qos: int = 0,
        retain: bool | int = False,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Start a publish and call ``settled`` when it ends (see :meth:`publish_nowait`).

        ``settled(None)`` once the broker acknowledged it (QoS 1/2) or it was written (QoS 0);
        ``settled(exc)`` with :class:`MqttUnavailable` when the session drops first, with
        :class:`~mqferry._errors.DeliveryError` when the broker's ack carries an error code, and
        with ``ValueError`` when the packet cannot be encoded. It may be called before this
        returns (QoS 0, or a packet that cannot be encoded), and exactly once.

        Every publish is checked before it is written, so that no message can make the broker
        end the session (which would then be sent again after each reconnect): the topic and
        the string properties must be MQTT strings a broker accepts (no NUL or other control
        character, no surrogate or noncharacter, at most 65535 bytes), the topic without
        wildcards; a topic alias within the broker's maximum, and the packet within the
        broker's Maximum Packet Size (those two fail through ``settled``).

        Raises:
            MqttUnavailable: the session is not up (``settled`` is not called).
            ValueError: an invalid topic or property (``settled`` is not called).
        """
        self._outbox.publish(self._session_up(), topic, payload, settled, qos=qos, retain=retain,
                             properties=properties)

    def _released(self) -> None:
        self._outbox.released(self._proto)

    # -- incoming ----------------------------------------------------------------------------

    def _send_acks(self, acks: list[tuple[int, int]]) -> None:
        # Called once per turn of the event loop (the window is deferred): the run leaves now,
        # not after the reads of the next turn (each PUBACK lets the broker send another).
        proto = self._proto
        if proto is not None:
            proto.send_acks(acks)
            proto.flush()
            if proto.held_back and len(self.acks) <= self.config.receive_maximum // 2:
                proto.go_on()

    def _on_message(self, message: InMessage) -> None:
        handler = self._handler
        if message.malformed:
            self._drop_malformed(message)
            return
        ids = message.sub_ids
        if ids and not self._refused:
            routes = self._routes
            if len(ids) == 1:
                route = routes.get(ids[0])
                if route is not None:
                    message.routes = route
                else:  # queued for a subscription not made again (yet): retired, or held
                    # (read here: the copies queued come before _connect takes the app's ids)
                    message.routes = self.subscriber.ids.retired_routes(ids[0], message.topic)
            elif all(i in routes for i in ids):
                message.routes = tuple(routes[i][0] for i in ids)
        if message.qos > 0:
            ticket = self.acks.open(message.mid, message.qos)
            if len(self.acks) >= self.config.receive_maximum:
                proto = self._proto
                if proto is not None:
                    proto.hold_back()  # until half of them are acknowledged
            if handler is None:
                ticket.seal()
                return
            handler(message, ticket)
            return
        if handler is not None:
            handler(message, None)

    def _drop_malformed(self, message: InMessage) -> None:
        """Acknowledge, count and drop a message that cannot be handled.

        Not acknowledging it would not help: the broker would send it again, for ever.
        """
        metrics = self.metrics
        metrics.inc("dropped")
        metrics.inc("dropped.malformed")
        self._limiter.warning(
            "malformed", "dropped a malformed MQTT message (topic %r, packet id %d): %s",
            message.raw_topic or message.topic, message.mid, message.malformed)
        self._ack_now(message)

    def _ack_now(self, message: InMessage) -> None:
        if message.qos == 0:
            return
        self.acks.open(message.mid, message.qos).seal()  # in order with the acks still pending

    # -- the connection loop -----------------------------------------------------------------

    async def _connect(self) -> MqttProtocol:
        """Open the session and subscribe.

        Raises:
            ConfigError: a TLS file cannot be used.
            MqttUnavailable: no session.
        """
        cfg = self.config
        proto, connack = await open_session(
            cfg, client_id=cfg.clientid, clean_start=cfg.clean_start,
            session_expiry=session_expiry(cfg), on_publish=self._on_message,
            on_released=self._released)
        self._outbox.opened(connack.get("ReceiveMaximum", 65535))
        self.subscriber.connected(connack)
        self._routes = self.subscriber.ids.routes  # an app gives the subscriber its file
        self._proto = proto
        return proto

    async def _run(self) -> None:
        delay = self.config.reconnect_min
        cfg = self.config
        retries = RetryLog(log, f"MQTT broker {cfg.server}")
        while not self._stopping:
            try:
                try:
                    proto = await self._connect()
                    self.connects += 1
                    await self._subscribe(proto, self._filters)
                    await self.subscriber.clean(proto)
                    self._status = HealthStatus(Status.CONNECTED)
                    self._connected.set()
                    log.info("connected to MQTT broker %s as %r", cfg.server, cfg.clientid)
                    retries.reset()
                    began = asyncio.get_running_loop().time()
                    reason = await proto.closed
                    lasted = asyncio.get_running_loop().time() - began
                    if proto.disconnect_code == SESSION_TAKEN_OVER:
                        reason = ("the session was taken over by another client with the "
                                  f"client id {cfg.clientid!r}")
                        log.warning("MQTT %s", reason)
                    if lasted >= STABLE_AFTER:
                        delay = cfg.reconnect_min
                    # Else the back-off keeps growing: a connection the broker ends at once
                    # (another client took the session over and Mosquitto just closes the
                    # socket, or a refusal after the CONNACK) must not make two clients with
                    # one client id (a stalled cluster node and its slot's new owner, two
                    # bridges given one id) kick each other out several times a second.
                    raise MqttUnavailable(reason, session=self._session)
                finally:
                    self._drop_session()
            except (MqttUnavailable, ConfigError) as exc:
                # ConfigError: a TLS file missing or unusable; it may be fixed later.
                reason = explain(exc) if isinstance(exc, MqttUnavailable) else str(exc)
                self._status = HealthStatus(Status.CONNECTING, reason)
                pause = delay * (0.5 + random.random() / 2)
                retries.failed(reason, pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, cfg.reconnect_max)

    def _drop_session(self) -> None:
        """Forget the session's state, however it ended (lost, stopped or a crash)."""
        self._connected.clear()
        self.acks.settle()  # what is secured already leaves before the DISCONNECT
        proto, self._proto = self._proto, None
        if proto is not None:
            proto.disconnect()  # ours to end: the broker keeps the session and its messages
        lost = self.acks.reset()
        if lost:
            log.warning("MQTT connection lost with %d unacknowledged messages; "
                        "the broker will redeliver them", lost)
        self._outbox.lost("the MQTT connection was lost before the broker's ack")

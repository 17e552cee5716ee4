"""Shared MQTT ingress: one persistent MQTT session per session slot this node holds.

The rules' topic filters are subscribed as ``$share/<cluster>/<filter>`` by ``session_slots``
persistent sessions (client id ``<cluster>-slot-<n>``), and the broker spreads the messages
over them. The cluster transport divides the slots among the live nodes; a node opens the
sessions of the slots it holds and hands their messages to the app's normal path (the same
rules, deferred PUBACKs, metrics and dead letters).

When a node loses a slot it stops taking that session's messages, waits a bounded time for the
ones in flight to be acknowledged, and disconnects keeping the session: what is still
unacknowledged is redelivered by the broker to the node that opens the session next. A node
that dies leaves its sessions at the broker with their unacknowledged and queued messages; the
transport gives its slots to the live nodes once it is declared gone, and they drain them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mqferry._config.models import ClusterConfig, MqttConfig
from mqferry._mqtt.client import Incoming, MqttConnector
from mqferry._runtime.delivery import Ticket
from mqferry._types import HealthStatus, Status

if TYPE_CHECKING:
    from mqferry._cluster.transport import ClusterTransport
    from mqferry._runtime.app import App

log = logging.getLogger(__name__)

__all__ = ["SLOT_SESSION_EXPIRY", "SlotSession", "SlotSessions"]

#: The shortest session expiry of a slot session (seconds): the broker must keep a dead node's
#: sessions, and the messages queued for them, until another node takes them over.
SLOT_SESSION_EXPIRY = 3600.0


def slot_mqtt_config(mqtt: MqttConfig, cluster: ClusterConfig, slot: int) -> MqttConfig:
    """The MQTT settings of slot ``slot``'s session: the ``mqtt`` section's broker, TLS and
    authentication, a persistent session of the slot's own, the cluster's share group."""
    return mqtt.model_copy(update={
        "clientid": f"{cluster.name}-slot-{slot}",
        "clean_start": False,
        "session_expiry": max(mqtt.session_expiry, SLOT_SESSION_EXPIRY),
        "share_group": cluster.name,
    })


class SlotSession:
    """The MQTT session of one slot; it takes messages until it drains.

    Args:
        slot: the slot number.
        app: whose rules its messages go to.
        config: the session's MQTT settings (see :func:`slot_mqtt_config`).
    """

    def __init__(self, slot: int, app: App, config: MqttConfig) -> None:
        self.slot = slot
        self._app = app
        #: Set once the slot is revoked: new messages are left to the next owner.
        self.draining = False
        self._left = 0
        #: When the session was opened, and when it handed on its first message (wall clock).
        self.opened = time.time()
        self.first_message: float | None = None
        #: How many messages it handed to the rules.
        self.received = 0
        self.connector: MqttConnector = app.adopt_mqtt(
            app.mqtt_factory(config=config, handler=self._on_message))

    def _on_message(self, message: Incoming, ticket: Ticket | None) -> None:
        if self.draining and ticket is not None:
            # Never acknowledged (nor anything after it): the broker redelivers it to the node
            # that opens this session next.
            self._left += 1
            return
        if self.first_message is None:
            self.first_message = time.time()
        self.received += 1
        self._app.inbound.handle(message, ticket)

    @property
    def in_flight(self) -> int:
        """How many messages it took are not acknowledged yet."""
        return max(len(self.connector.acks) - self._left, 0)

    async def reconnect(self) -> None:
        """Reconnect the session, forgetting what it has not acknowledged (the broker
        redelivers it)."""
        await self.connector.stop()
        self.connector.acks.reset()
        self._left = 0
        if not self.draining:
            await self.connector.start()

    async def close(self, timeout: float) -> None:
        """Stop taking messages, wait up to ``timeout`` seconds for those in flight to be
        acknowledged, and disconnect keeping the session."""
        self.draining = True
        deadline = time.monotonic() + timeout
        # Polled: the ack window signals nothing (its hot path stays as it is), and this runs
        # only on a revocation, for a few seconds at most.
        while self.in_flight and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        if self.in_flight:
            log.warning("slot %d: %d messages still unacknowledged after %.0fs; the broker "
                        "redelivers them to the slot's next owner", self.slot, self.in_flight,
                        timeout)
        await self.connector.stop()
        log.info("slot %d: session closed (%d messages left to the next owner)", self.slot,
                 self._left)


class SlotSessions:
    """The cluster part that takes MQTT input through the slots this node holds.

    A :class:`~mqferry._cluster.transport.SlotListener` for the transport and an
    :class:`~mqferry._runtime.app.Ingress` of the app (which tells it every change of the rule
    subscriptions).

    Args:
        app: the app whose rules get the messages.
        transport: the cluster transport that divides the slots.
        config: the ``cluster`` section.
        drain_timeout: how long a revoked slot waits for its messages in flight (seconds;
            by default 5, or half ``node_timeout`` if that is shorter).
    """

    def __init__(self, app: App, transport: ClusterTransport, config: ClusterConfig, *,
                 drain_timeout: float | None = None) -> None:
        self._app = app
        self._transport = transport
        self.config = config
        # Within half the node timeout: a rebalance waits for every member's revocation that
        # long before it gives up on the member.
        self.drain_timeout = (min(5.0, config.node_timeout / 2) if drain_timeout is None
                              else drain_timeout)
        #: The open sessions, by slot.
        self.sessions: dict[int, SlotSession] = {}
        self._running = False
        self._lock = asyncio.Lock()

    # -- the part's lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Join the slot membership; sessions open as slots are assigned."""
        if self._running:
            return
        self._running = True
        self._app.ingress.append(self)
        await self._transport.join_slots(self.config.session_slots, self)

    async def stop(self) -> None:
        """Close every session (drained as on a revocation). Idempotent.

        The membership itself ends with the transport's stop.
        """
        self._running = False
        if self in self._app.ingress:
            self._app.ingress.remove(self)
        await self.revoked(frozenset(self.sessions))

    async def health(self) -> HealthStatus:
        """``connected`` when every session of the slots held is, else which one is not."""
        for slot, session in sorted(self.sessions.items()):
            health = await session.connector.health()
            if health.status is not Status.CONNECTED:
                return HealthStatus(health.status, f"slot {slot}: {health.reason or 'down'}")
        return HealthStatus(Status.CONNECTED if self._running else Status.STOPPED)

    def describe(self) -> dict[str, Any]:
        """Which slots this node holds, each session's client id and state."""
        sessions = {}
        for slot, session in sorted(self.sessions.items()):
            sessions[str(slot)] = {
                "clientid": session.connector.config.clientid,
                "connected": session.connector.is_connected,
                "in_flight": session.in_flight,
                "received": session.received,
                "draining": session.draining,
            }
        return {"node": self._app.node, "session_slots": self.config.session_slots,
                "slots": sorted(self.sessions), "sessions": sessions}

    # -- the slot listener -------------------------------------------------------------------

    async def assigned(self, slots: frozenset[int]) -> None:
        """Open the sessions of ``slots``, subscribed to the rules' filters."""
        async with self._lock:
            if not self._running:
                return
            filters = self._app.topic_filters
            for slot in sorted(slots - set(self.sessions)):
                session = SlotSession(slot, self._app, slot_mqtt_config(
                    self._app.config.raw.mqtt, self.config, slot))
                self.sessions[slot] = session
                await session.connector.set_subscriptions(filters)
                await session.connector.start()
            log.info("slots %s opened; this node holds %s", sorted(slots),
                     sorted(self.sessions))

    async def revoked(self, slots: frozenset[int]) -> None:
        """Drain and close the sessions of ``slots`` (all at once, each bounded)."""
        async with self._lock:
            closing = [self.sessions.pop(s) for s in sorted(slots) if s in self.sessions]
            if closing:
                await asyncio.gather(*(s.close(self.drain_timeout) for s in closing))
                log.info("slots %s closed; this node holds %s",
                         [s.slot for s in closing], sorted(self.sessions))

    # -- the app's ingress -------------------------------------------------------------------

    async def set_subscriptions(self, filters: set[str]) -> None:
        """Subscribe every open session to exactly ``filters``, all at once.

        A session that fails (its connection dropped mid-request) subscribes to ``filters`` when
        it reconnects; the others are not held up by it.
        """
        sessions = list(self.sessions.values())
        results = await asyncio.gather(
            *(s.connector.set_subscriptions(filters) for s in sessions), return_exceptions=True)
        for session, result in zip(sessions, results, strict=True):
            if isinstance(result, Exception):
                log.warning("slot %d: changing its subscriptions failed (%s); they apply when "
                            "it reconnects", session.slot, result)
            elif isinstance(result, BaseException):
                raise result

    async def reconnect(self) -> None:
        """Reconnect every open session (see :meth:`App.reconnect_mqtt`)."""
        for session in list(self.sessions.values()):
            await session.reconnect()

    def connectors(self) -> Mapping[str, MqttConnector]:
        """The open sessions' connectors, named ``slot <n>``."""
        return {f"slot {slot}": s.connector for slot, s in sorted(self.sessions.items())}


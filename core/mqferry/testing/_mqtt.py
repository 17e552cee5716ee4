"""MQTT twins: a publisher that records what is published, and a broker session for an app.

:class:`InMemoryMqtt` is the publisher a source or an action is given (``context.mqtt``).
:class:`MqttTwin` is the whole MQTT connector of an :class:`~mqferry._runtime.App`, injected
through its ``mqtt_factory``: it records publishes as :class:`InMemoryMqtt` does, and delivers
incoming messages (:meth:`MqttTwin.deliver`) to the app as the broker would, recording which
ones the app acknowledged.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from mqferry._config import MqttConfig
from mqferry._errors import MqttUnavailable
from mqferry._mqtt.acks import AckWindow
from mqferry._rules.topic import topic_matches
from mqferry._runtime.delivery import Ticket
from mqferry._types import HealthStatus, Status


@dataclass(frozen=True, slots=True)
class Published:
    """One message an :class:`InMemoryMqtt` received."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Mapping[str, Any] | None


@dataclass
class InMemoryMqtt:
    """An MQTT publisher twin that records every publish.

    Attributes:
        published: what was published, in order.
        fail_next: publishes that raise this exception (then succeed), to test retries.
        connected: set while the session is up; clear it to make every publish fail with
            :class:`~mqferry._errors.MqttUnavailable`, as the real connector's do.
    """

    published: list[Published] = field(default_factory=list)
    fail_next: list[BaseException] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    #: When true, :meth:`publish_nowait` futures stay pending until :meth:`ack` settles them.
    hold_acks: bool = False
    pending: list[asyncio.Future[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.connected.set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once :attr:`connected` is set."""
        async with asyncio.timeout(timeout):
            await self.connected.wait()

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Record the publish (or raise the next queued failure).

        Raises:
            MqttUnavailable: :attr:`connected` is clear.
        """
        await asyncio.sleep(0)
        self._check_connected()
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.published.append(Published(topic, payload, qos, retain, properties))

    def publish_nowait(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
    ) -> asyncio.Future[None]:
        """Record the publish; the future fails with the next queued failure, if any.

        With :attr:`hold_acks`, the future stays pending until :meth:`ack`.

        Raises:
            MqttUnavailable: :attr:`connected` is clear.
        """
        self._check_connected()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_next:
            future.set_exception(self.fail_next.pop(0))
            return future
        self.published.append(Published(topic, payload, qos, retain, properties))
        if self.hold_acks:
            self.pending.append(future)
        else:
            future.set_result(None)
        return future

    def publish_with(
        self,
        topic: str,
        payload: bytes,
        settled: Callable[[BaseException | None], None],
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """As :meth:`publish_nowait` (whatever a subclass makes it do), telling ``settled``.

        Raises:
            MqttUnavailable: :attr:`connected` is clear.
        """
        future = self.publish_nowait(topic, payload, qos=qos, retain=retain,
                                     properties=properties)

        def tell(f: asyncio.Future[None]) -> None:
            settled(asyncio.CancelledError() if f.cancelled() else f.exception())
        future.add_done_callback(tell)

    def _check_connected(self) -> None:
        if not self.connected.is_set():
            raise MqttUnavailable("not connected to the MQTT broker", session="in-memory")

    def ack(self, count: int | None = None, error: BaseException | None = None) -> int:
        """Settle the oldest ``count`` held publishes (all by default), failing them with
        ``error`` if given; returns how many were settled."""
        n = len(self.pending) if count is None else min(count, len(self.pending))
        settle, self.pending = self.pending[:n], self.pending[n:]
        for future in settle:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)
        return n


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message the broker delivers to the app (the fields the runtime reads)."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    retain: bool = False
    dup: bool = False
    #: MQTT 5 publish properties, by paho's attribute names (``UserProperty``, ``ContentType``)
    properties: Any = None
    #: the topic filters of the subscriptions this copy came for (empty: by its topic)
    routes: tuple[str, ...] = ()


class MqttTwin(InMemoryMqtt):
    """The MQTT connector of an app under test: publishes recorded, messages delivered by hand.

    Made by :func:`mqferry.testing.build_app` (or pass :meth:`factory` as an ``App``'s
    ``mqtt_factory``). Like a broker, it delivers a message only when a subscription of the app
    matches its topic, and numbers QoS 1/2 messages; :attr:`acked` lists the packet ids the app
    acknowledged, in the order it sent the acknowledgements.

    Args:
        config: the app's ``mqtt`` section.
        handler: the app's handler of incoming messages.
    """

    def __init__(self, *, config: MqttConfig, handler: Any) -> None:
        super().__init__()
        self.config = config
        self.handler = handler
        self.connected.clear()
        #: the topic filters the app subscribed to
        self.subscriptions: set[str] = set()
        #: packet ids acknowledged to the broker, in order
        self.acked: list[int] = []
        self.acks = AckWindow(self._send_acks)
        self._status = HealthStatus(Status.STOPPED)
        self._mids = itertools.count(1)

    @classmethod
    def factory(cls, made: list[MqttTwin]) -> Any:
        """An ``mqtt_factory`` for ``App`` that appends each twin it makes to ``made``."""
        def make(*, config: MqttConfig, handler: Any) -> MqttTwin:
            twin = cls(config=config, handler=handler)
            made.append(twin)
            return twin
        return make

    def _send_acks(self, acks: list[tuple[int, int]]) -> None:
        self.acked.extend(mid for mid, _ in acks)

    async def start(self) -> None:
        """The session is up."""
        self._status = HealthStatus(Status.CONNECTED)
        self.connected.set()

    async def stop(self) -> None:
        """The session is closed."""
        self._status = HealthStatus(Status.STOPPED)
        self.connected.clear()

    async def health(self) -> HealthStatus:
        """``connected`` between :meth:`start` and :meth:`stop`."""
        return self._status

    @property
    def is_connected(self) -> bool:
        """Whether the session is up."""
        return self.connected.is_set()

    async def set_subscriptions(self, filters: Iterable[str]) -> None:
        """Subscribe to exactly ``filters``."""
        self.subscriptions = set(filters)

    def deliver(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                user_properties: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                content_type: str | None = None, properties: Any = None) -> int | None:
        """Deliver a message to the app, as the broker would.

        ``properties`` gives the message's MQTT 5 properties as they are, instead of building
        them from ``user_properties`` and ``content_type`` (for a malformed one, say).

        Returns:
            The packet id the app acknowledges it with (see :attr:`acked`), ``None`` at QoS 0.

        Raises:
            AssertionError: no subscription of the app matches ``topic`` (the broker would not
                deliver it).
        """
        if not any(topic_matches(f, topic) for f in self.subscriptions):
            raise AssertionError(f"no subscription matches {topic!r}: {sorted(self.subscriptions)}")
        props = properties
        user = list(user_properties.items() if isinstance(user_properties, Mapping)
                    else user_properties)
        if user or content_type is not None:
            props = SimpleNamespace()
            if user:
                props.UserProperty = user
            if content_type is not None:
                props.ContentType = content_type
        mid = next(self._mids) if qos else 0
        ticket: Ticket | None = self.acks.open(mid, qos) if qos else None
        self.handler(IncomingMessage(topic, payload, qos, mid, retain, properties=props), ticket)
        return mid if qos else None

    async def settle(self) -> None:
        """Let callbacks scheduled by the app run (acknowledgements of settled deliveries)."""
        for _ in range(3):
            await asyncio.sleep(0)

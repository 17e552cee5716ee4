"""The interfaces every connector, action and source implements, and what the runtime gives them.

Plugins implement these protocols; the runtime never looks further into a plugin's objects.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from mqferry._metrics import Metrics


class Status(enum.StrEnum):
    """Health of a component, with EMQX's names."""

    CONNECTED = "connected"
    CONNECTING = "connecting"
    DISCONNECTED = "disconnected"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """A component's status and, when it is not connected, why."""

    status: Status
    reason: str = ""

    def to_json(self) -> dict[str, str]:
        """The status as the REST API and CLI show it."""
        out = {"status": str(self.status)}
        if self.reason:
            out["status_reason"] = self.reason
        return out


@runtime_checkable
class Component(Protocol):
    """The lifecycle shared by connectors, actions and sources."""

    async def start(self) -> None:
        """Start background work. Must not raise because a remote system is down; keep retrying."""

    async def stop(self) -> None:
        """Flush what is in flight and release resources. Idempotent."""

    async def health(self) -> HealthStatus:
        """The current status, cheap enough to call every few seconds."""


class Connector(Component, Protocol):
    """A named connection to an external system."""


class Delivery(Protocol):
    """The promise an action makes about one rule output.

    Exactly one of :meth:`secured` or :meth:`failed` is called, once, when the action has made sure
    the output will not be lost (acknowledged by Kafka, on disk, ...) or has given up on it.
    """

    def secured(self) -> None:
        """The output is safe; the MQTT message it came from may be acknowledged."""

    def failed(self, reason: str) -> None:
        """The output was not delivered; ``reason`` is the metric counter it is counted under."""


#: MQTT 5 user property that the ``republish`` action sets on what it publishes. When such a message
#: comes back through a rule's subscription, the runtime does not hand the rule's outputs to any
#: action whose ``loop_guard`` attribute is true, so republishing can never loop.
LOOP_MARKER = "mqferry-republished"


class Action(Component, Protocol):
    """A named output that rules send their results to.

    An action may set ``loop_guard = True`` to be skipped for messages carrying
    :data:`LOOP_MARKER` (the ``republish`` action does), and ``ack_wait`` to a number of
    seconds: with ``mqtt.delivery: at_most_once`` the PUBACK of a message then waits for this
    action's outcome, up to that long (the ``kafka_producer`` action's ``query_mode: sync``).
    Without it, at-most-once acks never wait; at-least-once acks always wait for the outcome.

    An action with state on disk that only one instance may hold at a time (the
    ``kafka_producer`` action's disk buffer) sets ``exclusive = True``. A reconfiguration that
    replaces it then starts the new instance only once the old one stopped, and routes to the
    new one meanwhile: its ``submit`` must take outputs before ``start`` and hold them. Such an
    action sets ``kept``, once stopped, to the number of records it left on disk for the next
    instance (not counted as dropped). An action whose instances of one name share a directory
    (``kafka_producer``'s ``<data_dir>/kafka_producer/<name>``, whatever its buffer mode) says
    so in ``disk_directory`` (a :class:`~pathlib.Path`): the next one sends what an instance
    left there, a removal or a start-up with records there and no such action says so.
    """

    metrics: Metrics

    def submit(self, output: Mapping[str, Any], delivery: Delivery) -> None:
        """Take one rule output. Must not block; call ``delivery`` back later."""


class Source(Component, Protocol):
    """A named input that feeds rules or publishes straight to MQTT.

    A source whose events wait for the actions may define ``redeliver(reason: str) -> None``:
    a reconfiguration calls it when a replaced action stopped with outputs it will never
    settle. The source then takes its events in flight again from where they came (without
    settling anything past them) and dispatches them anew, to the new configuration.
    """

    metrics: Metrics


class MqttPublisher(Protocol):
    """Publishing side of the MQTT connector, as actions and sources use it."""

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Return once the MQTT session is up."""

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        """Publish and return once the broker acknowledged it (QoS 1/2) or it was written (QoS 0).

        ``properties`` holds MQTT 5 properties by their spec names (``Content-Type``,
        ``User-Property`` as a mapping or a list of pairs ...).
        """

    def publish_nowait(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 0,
        retain: bool = False,
        properties: Mapping[str, Any] | None = None,
    ) -> asyncio.Future[None]:
        """Start a publish on the current session without waiting (no task per message).

        The future completes as :meth:`publish` returns; it fails with
        :class:`~mqferry._errors.MqttUnavailable` when the session drops before the broker's ack
        (publish again after :meth:`wait_connected`), or with
        :class:`~mqferry._errors.DeliveryError` when the broker refused it.

        Raises:
            MqttUnavailable: the session is not up.
            ValueError: an invalid topic or property.
        """
        ...

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
        """Start a publish and call ``settled`` once when it ends, without a future.

        ``settled(None)`` when the publish's future from :meth:`publish_nowait` would complete,
        ``settled(exc)`` with the exception it would fail with. It may be called before this
        returns. For a stream of publishes: it saves the future and the turn of the event loop
        its callbacks wait for (over ten times the cost of the call, measured).

        Raises:
            MqttUnavailable: the session is not up (``settled`` is not called).
            ValueError: an invalid topic or property (``settled`` is not called).
        """
        ...


#: Run the enabled rules on an event: returns an awaitable that completes when every action the
#: event reached has secured or failed its outputs; it raises ``DeliveryError``
#: (``failed.action``) when an action failed one of them for good, or (``failed.rule``) when a
#: rule failed on the event (its evaluation raised).
Dispatch = Callable[[Mapping[str, Any]], Awaitable[None]]

#: :data:`Dispatch` returning a plain future, so a source can wait on many events without a task
#: each.
DispatchNowait = Callable[[Mapping[str, Any]], "asyncio.Future[None]"]


@dataclass(slots=True)
class RuntimeContext:
    """What the runtime hands to the factories of connectors, actions and sources.

    Attributes:
        mqtt: publishes to the MQTT broker mqferry is attached to.
        dispatch: feeds an event (with an ``event`` key such as
            ``$bridges/kafka_consumer:<name>``) to the rules that select it; raises
            :class:`~mqferry._errors.DeliveryError` (``failed.action``) when an action failed
            an output of it for good, (``failed.rule``) when a rule failed on it.
        data_dir: a directory the component may keep files in (disk buffers).
        node: this instance's name, as EMQX's ``node`` column.
        connectors: the running connectors by ``<type>:<name>``.
        dispatch_nowait: as ``dispatch``, returning a future (``None`` when the runtime offers
            only ``dispatch``).
    """

    mqtt: MqttPublisher
    dispatch: Dispatch
    data_dir: Path
    node: str = "mqferry@localhost"
    connectors: dict[str, Connector] = field(default_factory=dict)
    dispatch_nowait: DispatchNowait | None = None

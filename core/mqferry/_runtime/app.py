"""The running application: components, rule routing, delivery tracking, start and stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from mqferry._config.loader import AppConfig
from mqferry._metrics import Metrics
from mqferry._metrics.history import MetricHistory
from mqferry._mqtt.client import Incoming, MqttConnector, mqtt_metrics
from mqferry._mqtt.subscriptions import SubscriptionIds
from mqferry._rules import Event
from mqferry._runtime.ackstall import AckStalls, holders
from mqferry._runtime.ackwait import AckWaits
from mqferry._runtime.builder import Builder
from mqferry._runtime.deadletter import DeadLetters
from mqferry._runtime.delivery import EventDone, Ticket
from mqferry._runtime.events import Inbound
from mqferry._runtime.failures import LogLimiter
from mqferry._runtime.leftovers import warn_unowned
from mqferry._runtime.routing import Routing
from mqferry._runtime.rules import RuleEnv, RuntimeRule, describe
from mqferry._tasks import Supervisors
from mqferry._types import (
    Action,
    Connector,
    HealthStatus,
    MqttPublisher,
    RuntimeContext,
    Source,
    Status,
)

if TYPE_CHECKING:
    from mqferry._cluster.node import ClusterNode
    from mqferry._runtime.reconfig import Plan

log = logging.getLogger(__name__)

__all__ = ["App", "Ingress", "RuntimeRule"]


#: Seconds after which an unacknowledged MQTT message makes the session's health ``connecting``.
ACK_STALL_AFTER = 60.0


class Ingress(Protocol):
    """MQTT sessions besides the app's own that take the rules' input (a cluster's slots).

    They hand their messages to :meth:`App.handle_message`; the app tells them every change of
    the rule subscriptions and covers their health and acknowledgements in
    :meth:`App.mqtt_health`.
    """

    async def set_subscriptions(self, filters: set[str]) -> None:
        """Subscribe every session to exactly ``filters``."""
        ...

    def connectors(self) -> Mapping[str, MqttConnector]:
        """The open sessions, by a name for status reasons (``slot 3``)."""
        ...

    async def reconnect(self) -> None:
        """Reconnect every session, forgetting what it has not acknowledged."""
        ...


class App:
    """One mqferry instance built from a validated configuration.

    Args:
        config: the validated configuration.
        data_dir: where components keep files (defaults to the config's ``data_dir``).
        publisher: what components publish MQTT messages with (defaults to the app's MQTT
            session); tests inject a twin such as :class:`mqferry.testing.InMemoryMqtt`.
        mqtt_factory: makes the MQTT connector from the ``mqtt`` section and the handler of
            incoming messages (:class:`MqttConnector` unless a twin is injected, see
            :class:`mqferry.testing.MqttTwin`).
    """

    def __init__(self, config: AppConfig, *, data_dir: Path | None = None,
                 publisher: MqttPublisher | None = None,
                 mqtt_factory: Callable[..., MqttConnector] = MqttConnector) -> None:
        self.config = config
        self._data_dir = data_dir or Path(config.raw.data_dir)
        #: What the process started with: the sections that change only with a restart keep
        #: running these, whatever the reloads since applied.
        self.started_raw = config.raw
        self.node = config.raw.node
        #: Makes MQTT connectors (the app's own, and a cluster's slot sessions).
        self.mqtt_factory = mqtt_factory
        #: In a cluster the rules' input comes through the slot sessions (see :attr:`ingress`);
        #: the app's own session only publishes, under a client id of its own per node.
        self.clustered = config.raw.cluster is not None
        own = config.raw.mqtt
        if self.clustered:
            own = own.model_copy(update={"clientid": f"{own.clientid}-{self.node}"})
        #: The counters of the app's MQTT sessions (its own and a cluster's slots): messages
        #: from the broker dropped before the rules (``dropped.malformed``).
        self.mqtt_metrics = mqtt_metrics()
        self._waits = AckWaits() if config.raw.mqtt.delivery == "at_most_once" else None
        self._limiter = LogLimiter(log)
        #: Hands the sessions' messages to the rules (its routing is set once they are built).
        self.inbound = Inbound(Routing({}), self.node, self._waits, self._limiter)
        self.mqtt = self.adopt_mqtt(mqtt_factory(config=own, handler=self.inbound.handle))
        #: Sessions that take the rules' input besides :attr:`mqtt` (a cluster's slots).
        self.ingress: list[Ingress] = []
        #: This node's cluster membership (set when it runs in a cluster), else ``None``.
        self.cluster: ClusterNode | None = None
        self.context = RuntimeContext(
            mqtt=self.mqtt if publisher is None else publisher,
            dispatch=self.dispatch,
            dispatch_nowait=self.dispatch_nowait,
            data_dir=self._data_dir,
            node=self.node,
        )
        # Kept for the app's life and edited in place: the dead letters and the metric
        # history hold them.
        self.connectors: dict[str, Connector] = {}
        self.actions: dict[str, Action] = {}
        self.sources: dict[str, Source] = {}
        #: The app's own background loops, by owner: a loop that died marks its owner's
        #: health (``mqtt`` for the acks, ``metrics`` for the counters) until it recovers.
        self.tasks = Supervisors()
        self._ticker = self.tasks.add("metrics", "mqferry[metrics].tick", self._tick_metrics)
        #: The last hour of the actions' and sources' metrics (the console's charts).
        self.history = MetricHistory(lambda: {"actions": self.actions, "sources": self.sources})
        self.tasks.adopt("metrics", self.history.task)
        if self._waits is not None:
            self.tasks.adopt("mqtt", self._waits.task)
        dead_letter = config.raw.mqtt.dead_letter
        # The dead-letter setting is read once, as the rest of the mqtt section (a change
        # needs a restart); the action is looked up by id, so a replaced one is used.
        self._env = RuleEnv(
            dead_letters=None if dead_letter is None else DeadLetters(
                action_id=dead_letter.action, actions=self.actions, node=self.node,
                limiter=self._limiter),
            limiter=self._limiter)
        #: After how long an unacknowledged MQTT message makes the session's health
        #: ``connecting`` (see :meth:`mqtt_health`).
        self.ack_stall_after = ACK_STALL_AFTER
        self._stalls = AckStalls()
        #: Builds the components and rules, here and on each configuration change.
        self.builder = Builder(self.context, self._env)
        parts = self.builder.build(config)
        self.connectors.update(parts.connectors)
        self.context.connectors = self.connectors
        self.actions.update(parts.actions)
        self.sources.update(parts.sources)
        self.inbound.routing = Routing(parts.rules, self._ranks())

    @property
    def rules(self) -> dict[str, RuntimeRule]:
        """The running rules, by id."""
        return self.inbound.routing.rules

    def set_rules(self, rules: dict[str, RuntimeRule]) -> None:
        """Replace the running rules and their routing (topic index and event map) in one step
        of the event loop: a message sees either the old rules or the new ones."""
        self.inbound.routing = Routing(rules, self._ranks())

    @property
    def running(self) -> bool:
        """Whether :meth:`start` ran and :meth:`stop` did not."""
        return self.inbound.accepting

    async def reconfigure(self, config: AppConfig) -> Plan:
        """Apply a new validated configuration, touching only the components that changed;
        what was started, stopped and re-routed."""
        from mqferry._runtime.reconfig import apply_config

        return await apply_config(self, config)

    @property
    def topic_filters(self) -> set[str]:
        """The MQTT subscriptions: the union of the enabled rules' topic filters."""
        return self.inbound.routing.filters()

    # -- data path -------------------------------------------------------------------------

    def handle_message(self, message: Incoming, ticket: Ticket | None) -> None:
        """Run the rules on a message of an MQTT session; ``ticket`` acknowledges it."""
        self.inbound.handle(message, ticket)

    async def dispatch(self, event: Mapping[str, Any]) -> None:
        """Run the rules selecting ``event["event"]``; return when their actions settled.

        Raises:
            DeliveryError: an action failed an output of the event for good (``failed.action``)
                or a rule failed on it (``failed.rule``); see :class:`EventDone`.
        """
        await self.dispatch_nowait(event)

    def dispatch_nowait(self, event: Mapping[str, Any]) -> asyncio.Future[None]:
        """Run the rules selecting ``event["event"]``.

        Returns:
            A future that completes when their actions settled (a plain future, so a source can
            wait on many without a task each); it fails with ``DeliveryError`` as
            :meth:`dispatch` raises it.
        """
        rules = self.inbound.routing.for_event(str(event.get("event", "")))
        if not rules:
            idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            idle.set_result(None)
            return idle
        done = EventDone()
        try:
            full = Event(event)
            full.setdefault("node", self.node)
            for rule in rules:
                rule.run(full, done)
        except Exception as exc:  # as in _on_message
            self._limiter.warning("event", "an event of %s could not be processed: %s",
                                  event.get("event"), describe(exc))
        finally:
            done.seal()
        return done.future

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every component, then the MQTT session; never fails because a broker is down."""
        # records no configured action sends; counting them reads segments, off the loop
        await asyncio.to_thread(warn_unowned, self._data_dir, dict(self.actions))
        for cid, conn in self.connectors.items():
            log.info("starting connector %s", cid)
            await conn.start()
        for aid, action in self.actions.items():
            log.info("starting action %s", aid)
            await action.start()
        if self._waits is not None:
            self._waits.start()
        self.inbound.accepting = True
        await self.set_subscriptions(self.topic_filters)
        await self.mqtt.start()
        for sid, source in self.sources.items():
            log.info("starting source %s", sid)
            await source.start()
        self.tasks.start()

    def _ranks(self) -> dict[str, int] | None:
        """The order the app's own session subscribed its filters in (``Routing.ranks``)."""
        subscriber = getattr(self.mqtt, "subscriber", None)  # a twin has none
        return None if subscriber is None else subscriber.ids.ranks

    def adopt_mqtt(self, connector: MqttConnector) -> MqttConnector:
        """Make ``connector`` (one of the app's MQTT sessions) count in :attr:`mqtt_metrics`,
        and keep its subscriptions in the data directory (one file per client id)."""
        if isinstance(connector, MqttConnector):  # not a twin
            connector.metrics = self.mqtt_metrics
            name = quote(connector.config.clientid, safe="") or "_"
            connector.subscriber.ids = SubscriptionIds(
                self._data_dir / "mqtt" / f"{name}.subscriptions.json")
        return connector

    def all_metrics(self) -> list[Metrics]:
        """The metrics of every rule, action and source, and of the MQTT sessions."""
        out = [r.metrics for r in self.rules.values()]
        out += [a.metrics for a in self.actions.values()]
        out += [s.metrics for s in self.sources.values()]
        out.append(self.mqtt_metrics)
        return out

    async def _tick_metrics(self) -> None:
        while True:
            for m in self.all_metrics():
                m.tick()
            self._oldest_ack_wait(time.monotonic())
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Stop taking input, flush what is in flight, commit, disconnect."""
        self.inbound.accepting = False
        await self._ticker.stop()
        await self.history.stop()
        # Sources first, all at once: each stops fetching, settles what it has in flight (through
        # the actions, which must still take it) and commits. Then the actions, all at once:
        # each flushes on its own, and the MQTT acknowledgements they release go out before the
        # session closes. Shutdown takes the slowest source's stop plus the slowest action's,
        # not the sum of all. A component whose stop fails never keeps the others from theirs.
        await _stop_together(self.sources)
        await _stop_together(self.actions)
        if self._waits is not None:
            await self._waits.stop()
        await self.mqtt.stop()
        await self.tasks.stop()
        await _stop_together(self.connectors)
        # the blocking rules' worker thread ends once its queue is done (restarted on next use)
        self._env.offloop.close()

    async def status(self) -> dict[str, HealthStatus]:
        """The health of the MQTT session and every component, by id."""
        out = {"mqtt": await self.mqtt_health()}
        for group in (self.connectors, self.actions, self.sources):
            for cid, comp in group.items():
                out[cid] = await comp.health()
        return out

    def task_problems(self) -> list[dict[str, str]]:
        """The app's background loops that died recently: ``{"task", "owner", "reason"}``."""
        return [{"task": name, "owner": owner, "reason": reason}
                for owner, found in sorted(self.tasks.problems().items())
                for name, reason in found]

    async def set_subscriptions(self, filters: Iterable[str]) -> None:
        """Subscribe the rules' input to exactly ``filters``.

        Without a cluster the app's own session subscribes; in a cluster the slot sessions do
        (:attr:`ingress`) and the app's own session subscribes to nothing.
        """
        wanted = set(filters)
        await self.mqtt.set_subscriptions(set() if self.clustered else wanted)
        for ingress in list(self.ingress):
            await ingress.set_subscriptions(wanted)

    async def reconnect_mqtt(self) -> None:
        """Reconnect the MQTT sessions that take input, with the same client ids.

        What they have not acknowledged is forgotten here and redelivered by the broker (held
        by actions that gave up, it would block every later acknowledgement).
        """
        await self.mqtt.stop()
        self.mqtt.acks.reset()
        await self.mqtt.start()
        for ingress in list(self.ingress):
            await ingress.reconnect()

    def _sessions(self) -> dict[str, MqttConnector]:
        out = {"": self.mqtt}
        for ingress in self.ingress:
            out.update(ingress.connectors())
        return out

    async def mqtt_health(self) -> HealthStatus:
        """The MQTT sessions' health, ``connecting`` while their acknowledgements are stalled.

        In a cluster, a slot session that is not connected makes it so too, named in the
        reason. When the oldest unacknowledged message has waited longer than
        :attr:`ack_stall_after` (seconds), nothing behind it is acknowledged either: the reason
        says how long, and which actions and rules hold messages.
        """
        health = await self.mqtt.health()
        for name, session in self._sessions().items():
            if name and health.status is Status.CONNECTED:
                theirs = await session.health()
                if theirs.status is not Status.CONNECTED:
                    health = HealthStatus(theirs.status,
                                          f"{name}: {theirs.reason or theirs.status}")
        if health.status is Status.CONNECTED and (dead := self.tasks.problems().get("mqtt")):
            return HealthStatus(Status.CONNECTING, "; ".join(reason for _, reason in dead))
        waited = self._oldest_ack_wait(time.monotonic())
        if health.status is not Status.CONNECTED or waited < self.ack_stall_after:
            return health
        return HealthStatus(Status.CONNECTING,
                            f"acknowledgements stalled: the oldest unacknowledged message has "
                            f"waited {waited:.0f}s; {holders(self.actions, self.rules)}")

    def _oldest_ack_wait(self, now: float) -> float:
        return self._stalls.oldest_wait([s.acks for s in self._sessions().values()], now)

    def metrics(self) -> dict[str, dict[str, float]]:
        """A snapshot of every rule, action and source counter, by component id."""
        return {m.component_id: m.snapshot() for m in self.all_metrics()}

    # -- one rule at a time (the API's rule routes) -------------------------------------------

    def add_rule(self, rule: RuntimeRule) -> list[str]:
        """Route ``rule`` (replacing the running rule with its id) without rebuilding the routing.

        Returns:
            The topic filters no running rule used before: the subscriptions to add.
        """
        return self.inbound.routing.add(rule)

    def remove_rule(self, rid: str) -> list[str]:
        """Stop routing to rule ``rid`` (if it runs) without rebuilding the routing.

        Returns:
            The topic filters no running rule uses any more: the subscriptions to remove.
        """
        return self.inbound.routing.remove(rid)


async def _stop_together(components: Mapping[str, Source | Action | Connector]) -> None:
    await asyncio.gather(*(_stop_logged(cid, c) for cid, c in components.items()))


async def _stop_logged(cid: str, component: Source | Action | Connector) -> None:
    try:
        await component.stop()
    except Exception:
        log.exception("%s: stop failed; stopping the rest", cid)

"""The running application: components, rule routing, delivery tracking, start and stop."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mqferry.config.loader import AppConfig, ComponentSpec
from mqferry.metrics import Metrics
from mqferry.metrics.history import MetricHistory
from mqferry.mqtt.acks import Ticket
from mqferry.mqtt.client import Incoming, MqttConnector
from mqferry.registry import ActionType, ConnectorType, SourceType
from mqferry.rules import Event, TopicIndex
from mqferry.runtime.ackwait import AckWaits
from mqferry.runtime.deadletter import DeadLetters
from mqferry.runtime.events import message_event
from mqferry.runtime.failures import LogLimiter
from mqferry.runtime.rules import RuleEnv, RuntimeRule, describe
from mqferry.tasks import Supervisor
from mqferry.types import (
    LOOP_MARKER,
    Action,
    Connector,
    HealthStatus,
    RuntimeContext,
    Source,
    Status,
)

if TYPE_CHECKING:
    from mqferry.runtime.reconfig import Plan

log = logging.getLogger(__name__)

__all__ = ["App", "RuntimeRule"]


#: Seconds after which an unacknowledged MQTT message makes the session's health ``connecting``.
ACK_STALL_AFTER = 60.0


class _EventDone(Ticket):
    """A ticket that completes a future: sources await the deliveries of their events."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        super().__init__(None, 0, 0, 0)
        self.future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _finish(self) -> None:
        if not self.done:
            self.done = True
            if not self.future.done():
                self.future.set_result(None)


class App:
    """One mqferry instance built from a validated configuration.

    Args:
        config: the validated configuration.
        data_dir: where components keep files (defaults to the config's ``data_dir``).
        mqtt_factory: makes the MQTT connector from the ``mqtt`` section and the handler of
            incoming messages (:class:`MqttConnector` unless a twin is injected, see
            :class:`mqferry.testing.MqttTwin`).
    """

    def __init__(self, config: AppConfig, *, data_dir: Path | None = None,
                 mqtt_factory: Callable[..., MqttConnector] = MqttConnector) -> None:
        self.config = config
        self.mqtt = mqtt_factory(config=config.raw.mqtt, handler=self._on_message)
        self.node = config.raw.node
        self.context = RuntimeContext(
            mqtt=self.mqtt,
            dispatch=self.dispatch,
            dispatch_nowait=self.dispatch_nowait,
            data_dir=data_dir or Path(config.raw.data_dir),
            node=self.node,
        )
        self.connectors: dict[str, Connector] = {}
        self.actions: dict[str, Action] = {}
        self.sources: dict[str, Source] = {}
        self.rules: dict[str, RuntimeRule] = {}
        self._topic_index: TopicIndex[RuntimeRule] = TopicIndex()
        self._event_rules: dict[str, list[RuntimeRule]] = {}
        self._accepting = False
        self._ticker = Supervisor("mqferry[metrics].tick", self._tick_metrics)
        #: The last hour of the actions' and sources' metrics (the console's charts).
        self.history = MetricHistory(lambda: {"actions": self.actions, "sources": self.sources})
        self._waits = AckWaits() if config.raw.mqtt.delivery == "at_most_once" else None
        self._limiter = LogLimiter(log)
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
        self._stall_head: Ticket | None = None
        self._stall_since = 0.0
        self._build()

    def _build(self) -> None:
        cfg, ctx = self.config, self.context
        for cid, spec in cfg.connectors.items():
            if spec.enabled:
                assert isinstance(spec.type, ConnectorType)
                self.connectors[cid] = spec.type.factory(spec.name, spec.config, ctx)
        ctx.connectors = self.connectors
        for kind, specs, target in (("action", cfg.actions, self.actions),
                                    ("source", cfg.sources, self.sources)):
            for cid, spec in specs.items():
                component = self._make(kind, cid, spec)
                if component is not None:
                    target[cid] = component
        for rid, rspec in cfg.rules.items():
            if not rspec.config.enable:
                continue
            actions = [self.actions[a] for a in rspec.action_ids if a in self.actions]
            rule = RuntimeRule(rspec, actions, self._env)
            self.rules[rid] = rule
            for flt in rule.compiled.topic_filters:
                self._topic_index.add(flt, rule)
            for topic in rule.compiled.event_topics:
                for alias in _event_aliases(topic):
                    self._event_rules.setdefault(alias, []).append(rule)

    def _make(self, kind: str, cid: str, spec: ComponentSpec) -> Any:
        if not spec.enabled:
            return None
        connector = self.connectors.get(spec.connector_id or "")
        if spec.connector_id and connector is None:
            log.warning("%s %s is not started: its connector %s is disabled",
                        kind, cid, spec.connector_id)
            return None
        assert isinstance(spec.type, ActionType | SourceType)
        return spec.type.factory(spec.name, spec.config, connector, self.context)

    def set_rules(self, rules: dict[str, RuntimeRule]) -> None:
        """Replace the running rules and rebuild the routing (topic index and event map).

        Routing is swapped in one step of the event loop, so a message sees either the old rules
        or the new ones.
        """
        index: TopicIndex[RuntimeRule] = TopicIndex()
        event_rules: dict[str, list[RuntimeRule]] = {}
        for rule in rules.values():
            rule.env = self._env
            for flt in rule.compiled.topic_filters:
                index.add(flt, rule)
            for topic in rule.compiled.event_topics:
                for alias in _event_aliases(topic):
                    event_rules.setdefault(alias, []).append(rule)
        self.rules, self._topic_index, self._event_rules = rules, index, event_rules

    @property
    def running(self) -> bool:
        """Whether :meth:`start` ran and :meth:`stop` did not."""
        return self._accepting

    async def reconfigure(self, config: AppConfig) -> Plan:
        """Apply a new validated configuration, touching only the components that changed.

        Returns:
            What was started, stopped and re-routed.
        """
        from mqferry.runtime.reconfig import apply_config

        return await apply_config(self, config)

    @property
    def topic_filters(self) -> set[str]:
        """The MQTT subscriptions: the union of the enabled rules' topic filters."""
        return {f for r in self.rules.values() for f in r.compiled.topic_filters}

    # -- data path -------------------------------------------------------------------------

    def _on_message(self, message: Incoming, ticket: Ticket | None) -> None:
        if not self._accepting:
            return  # stopping: leave it unacknowledged; the broker redelivers it
        if ticket is None:
            ticket = Ticket(None, 0, 0, 0)
        try:
            event = message_event(message, self.node)
            looped = LOOP_MARKER in event["pub_props"].get("User-Property", ())
            waits = self._waits
            for rule in self._topic_index.match(message.topic):
                rule.run(event, ticket, looped=looped, waits=waits)
        except Exception as exc:  # rules isolate their own failures: this is the rest
            self._limiter.warning("message", "a message on %r could not be processed: %s",
                                  message.topic, describe(exc))
        finally:
            # Always: a ticket never sealed is never acknowledged, and every later PUBACK waits
            # behind it.
            ticket.seal()

    async def dispatch(self, event: Mapping[str, Any]) -> None:
        """Run the rules selecting ``event["event"]``; return when their actions settled."""
        await self.dispatch_nowait(event)

    def dispatch_nowait(self, event: Mapping[str, Any]) -> asyncio.Future[None]:
        """Run the rules selecting ``event["event"]``.

        Returns:
            A future that completes when their actions settled (a plain future, so a source can
            wait on many without a task each).
        """
        rules = self._event_rules.get(str(event.get("event", "")))
        if not rules:
            idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            idle.set_result(None)
            return idle
        done = _EventDone()
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
        for cid, conn in self.connectors.items():
            log.info("starting connector %s", cid)
            await conn.start()
        for aid, action in self.actions.items():
            log.info("starting action %s", aid)
            await action.start()
        if self._waits is not None:
            self._waits.start()
        self._accepting = True
        await self.mqtt.set_subscriptions(self.topic_filters)
        await self.mqtt.start()
        for sid, source in self.sources.items():
            log.info("starting source %s", sid)
            await source.start()
        self._ticker.start()
        self.history.start()

    def all_metrics(self) -> list[Metrics]:
        """The metrics of every rule, action and source."""
        out = [r.metrics for r in self.rules.values()]
        out += [a.metrics for a in self.actions.values()]
        out += [s.metrics for s in self.sources.values()]
        return out

    async def _tick_metrics(self) -> None:
        while True:
            for m in self.all_metrics():
                m.tick()
            self._oldest_ack_wait(time.monotonic())
            await asyncio.sleep(1.0)

    async def stop(self) -> None:
        """Stop taking input, flush what is in flight, commit, disconnect."""
        self._accepting = False
        await self._ticker.stop()
        await self.history.stop()
        # A component whose stop fails must not keep the others from flushing and closing.
        for cid, comp in (*self.sources.items(), *self.actions.items()):
            await _stop_logged(cid, comp)
        if self._waits is not None:
            await self._waits.stop()
        await self.mqtt.stop()
        for cid, conn in self.connectors.items():
            await _stop_logged(cid, conn)
        # the blocking rules' worker thread ends once its queue is done (restarted on next use)
        self._env.offloop.close()

    async def status(self) -> dict[str, HealthStatus]:
        """The health of the MQTT session and every component, by id."""
        out = {"mqtt": await self.mqtt_health()}
        for group in (self.connectors, self.actions, self.sources):
            for cid, comp in group.items():
                out[cid] = await comp.health()
        return out

    async def mqtt_health(self) -> HealthStatus:
        """The MQTT session's health, ``connecting`` while its acknowledgements are stalled.

        When the oldest unacknowledged message has waited longer than :attr:`ack_stall_after`
        (seconds), nothing behind it is acknowledged either: the reason says how long, and
        which actions and rules hold messages.
        """
        health = await self.mqtt.health()
        waited = self._oldest_ack_wait(time.monotonic())
        if health.status is not Status.CONNECTED or waited < self.ack_stall_after:
            return health
        return HealthStatus(Status.CONNECTING,
                            f"acknowledgements stalled: the oldest unacknowledged message has "
                            f"waited {waited:.0f}s; {self._holders()}")

    def _oldest_ack_wait(self, now: float) -> float:
        # Sampled (each second by the metrics ticker, and on each status request) rather than
        # timed per message: the hot path pays nothing. The age is from the first sample that
        # saw the message at the head of the window.
        head = self.mqtt.acks.oldest()
        if head is not self._stall_head:
            self._stall_head, self._stall_since = head, now
            return 0.0
        return 0.0 if head is None else now - self._stall_since

    def _holders(self) -> str:
        held = []
        for aid, action in self.actions.items():
            snap = action.metrics.snapshot()
            queued, inflight = int(snap.get("queuing", 0)), int(snap.get("inflight", 0))
            if queued or inflight:
                held.append(f"action {aid} ({queued} queued, {inflight} in flight)")
        for rid, rule in self.rules.items():
            if rule.pending:
                held.append(f"rule {rid} ({rule.pending} waiting for evaluation)")
        if not held:
            return "no action or rule reports holding messages"
        return "held by " + ", ".join(held)

    def metrics(self) -> dict[str, dict[str, float]]:
        """A snapshot of every rule, action and source counter, by component id."""
        return {m.component_id: m.snapshot() for m in self.all_metrics()}

    # -- one rule at a time (the API's rule routes) -------------------------------------------

    #: How many running rules use each topic filter, kept by :meth:`add_rule` and
    #: :meth:`remove_rule` (recounted once after :meth:`set_rules` replaced the rules).
    _filter_uses: dict[str, int] | None = None
    _counted_rules: dict[str, RuntimeRule] | None = None

    def _uses(self) -> dict[str, int]:
        if self._filter_uses is None or self._counted_rules is not self.rules:
            uses: dict[str, int] = {}
            for r in self.rules.values():
                for flt in set(r.compiled.topic_filters):
                    uses[flt] = uses.get(flt, 0) + 1
            self._filter_uses, self._counted_rules = uses, self.rules
        return self._filter_uses

    def add_rule(self, rule: RuntimeRule) -> list[str]:
        """Route ``rule`` (replacing the running rule with its id) without rebuilding the index.

        Returns:
            The topic filters no running rule used before: the subscriptions to add.
        """
        if rule.id in self.rules:
            self.remove_rule(rule.id)
        uses = self._uses()
        self.rules[rule.id] = rule
        for flt in rule.compiled.topic_filters:
            self._topic_index.add(flt, rule)
        for topic in rule.compiled.event_topics:
            for alias in _event_aliases(topic):
                # A new list, not an append: a dispatch holding the old one is not disturbed.
                self._event_rules[alias] = [*self._event_rules.get(alias, ()), rule]
        new = []
        for flt in set(rule.compiled.topic_filters):
            uses[flt] = uses.get(flt, 0) + 1
            if uses[flt] == 1:
                new.append(flt)
        return sorted(new)

    def remove_rule(self, rid: str) -> list[str]:
        """Stop routing to rule ``rid`` (if it runs) without rebuilding the index.

        Returns:
            The topic filters no running rule uses any more: the subscriptions to remove.
        """
        uses = self._uses()
        rule = self.rules.pop(rid, None)
        if rule is None:
            return []
        for flt in rule.compiled.topic_filters:
            self._topic_index.remove(flt, rule)
        for topic in rule.compiled.event_topics:
            for alias in _event_aliases(topic):
                rest = [r for r in self._event_rules.get(alias, ()) if r is not rule]
                if rest:
                    self._event_rules[alias] = rest
                else:
                    self._event_rules.pop(alias, None)
        gone = []
        for flt in set(rule.compiled.topic_filters):
            uses[flt] -= 1
            if not uses[flt]:
                del uses[flt]
                gone.append(flt)
        return sorted(gone)

    def subscribed_filters(self) -> set[str]:
        """The union of the running rules' topic filters (as :attr:`topic_filters`), kept
        incrementally: no walk over every rule."""
        return set(self._uses())


async def _stop_logged(cid: str, component: Source | Action | Connector) -> None:
    try:
        await component.stop()
    except Exception:
        log.exception("%s: stop failed; stopping the rest", cid)


def _event_aliases(topic: str) -> tuple[str, ...]:
    for a, b in (("$bridges/", "$sources/"), ("$sources/", "$bridges/")):
        if topic.startswith(a):
            return (topic, b + topic.removeprefix(a))
    return (topic,)

"""The running application: components, rule routing, delivery tracking, start and stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mqferry.config.loader import AppConfig, ComponentSpec, RuleSpec
from mqferry.metrics import Metrics, rule_metrics
from mqferry.metrics.history import MetricHistory
from mqferry.mqtt.acks import Ticket
from mqferry.mqtt.client import Incoming, MqttConnector
from mqferry.registry import ActionType, ConnectorType, SourceType
from mqferry.rules import Event, Outcome, RuleError, TopicIndex
from mqferry.runtime.ackwait import AckWaits, RuleDelivery
from mqferry.runtime.events import message_event
from mqferry.tasks import Supervisor
from mqferry.types import LOOP_MARKER, Action, Connector, HealthStatus, RuntimeContext, Source

if TYPE_CHECKING:
    from mqferry.runtime.reconfig import Plan

log = logging.getLogger(__name__)


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


class RuntimeRule:
    """A compiled rule with its counters and resolved actions."""

    __slots__ = ("actions", "compiled", "id", "metrics")

    def __init__(self, spec: RuleSpec, actions: list[Action]) -> None:
        self.id = spec.id
        self.compiled = spec.compiled
        self.metrics = rule_metrics(spec.id)
        self.actions = actions

    def run(self, event: Mapping[str, Any], ticket: Ticket, *, looped: bool = False,
            waits: AckWaits | None = None) -> None:
        """Evaluate on ``event`` and hand every output to every action, holding ``ticket``.

        ``looped``: the event is a message mqferry republished itself; actions with a true
        ``loop_guard`` (republish) do not get its outputs, so republishing cannot loop.
        ``waits``: the message is acknowledged at most once: ``ticket`` is held only by actions
        with an ``ack_wait``, and only that long (see :mod:`mqferry.runtime.ackwait`).
        """
        m = self.metrics
        m.inc("matched")
        try:
            outcome, result = self.compiled.run(event)
        except RuleError as exc:
            m.inc("failed")
            m.inc("failed.exception")
            log.debug("rule %s failed on %s: %s", self.id, event.get("topic"), exc)
            return
        if outcome is Outcome.FILTERED:
            m.inc("filtered")
            return
        if outcome is Outcome.NO_RESULT or result is None:
            m.inc("failed")
            m.inc("failed.no_result")
            return
        m.inc("passed")
        outputs = result if isinstance(result, list) else (result,)
        for output in outputs:
            for action in self.actions:
                if looped and getattr(action, "loop_guard", False):
                    action.metrics.inc("dropped.loop")
                    continue
                m.inc("actions.total")
                if waits is not None:
                    action.submit(output, waits.delivery(ticket, m,
                                                         getattr(action, "ack_wait", None)))
                    continue
                ticket.hold()
                action.submit(output, RuleDelivery(ticket, m))


class App:
    """One mqferry instance built from a validated configuration.

    Args:
        config: the validated configuration.
        data_dir: where components keep files (defaults to the config's ``data_dir``).
    """

    def __init__(self, config: AppConfig, *, data_dir: Path | None = None) -> None:
        self.config = config
        self.mqtt = MqttConnector(config=config.raw.mqtt, handler=self._on_message)
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
            rule = RuntimeRule(rspec, actions)
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
        event = message_event(message, self.node)
        looped = LOOP_MARKER in event["pub_props"].get("User-Property", ())
        waits = self._waits
        for rule in self._topic_index.match(message.topic):
            rule.run(event, ticket, looped=looped, waits=waits)
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
        full = Event(event)
        full.setdefault("node", self.node)
        for rule in rules:
            rule.run(full, done)
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

    async def status(self) -> dict[str, HealthStatus]:
        """The health of the MQTT session and every component, by id."""
        out = {"mqtt": await self.mqtt.health()}
        for group in (self.connectors, self.actions, self.sources):
            for cid, comp in group.items():
                out[cid] = await comp.health()
        return out

    def metrics(self) -> dict[str, dict[str, float]]:
        """A snapshot of every rule, action and source counter, by component id."""
        return {m.component_id: m.snapshot() for m in self.all_metrics()}


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

"""Live reconfiguration: compute what a new configuration changes and apply only that.

The new configuration is validated before this module sees it. :func:`apply_config` then

1. builds every new or changed connector, action and source (a factory that raises aborts the
   change with nothing applied);
2. stops the sources that change (a Kafka consumer commits what it delivered and leaves its group);
3. starts the new connectors and actions;
4. swaps the rules and the routing in one step of the event loop: a message sees either the old
   rules or the new ones, and rules that did not change keep running (and keep their counters);
5. stops the replaced actions, which flush what they hold (buffered messages are delivered, and
   the MQTT acknowledgements they hold are released in order), then the replaced connectors;
6. sets the MQTT subscriptions to the enabled rules' topic filters, on the same session;
7. starts the new sources.

The MQTT connection is never restarted: its client id and session stay the same. Changes to
``mqtt``, ``api``, ``node`` or ``data_dir`` are reported as needing a restart.

A component whose ``stop()`` raises or overruns its bound (its ``stop_timeout`` attribute, the
time its own flush may take, plus :data:`STOP_MARGIN`; :data:`STOP_TIMEOUT` when it has none) is
logged and reported in :attr:`Plan.failed`, and the change goes on: the new component is
started all the same, so a faulty component never blocks reconfiguration or leaves the app
without its replacement. A ``start()`` that raises or hangs is reported the same way; the
component stays in the app, so its status shows it and a later change can replace it.

:class:`Controller` owns the configuration of a running instance: reload from the file (SIGHUP,
``mqferry config reload``) and changes from the REST API, which it validates, applies and writes
back to the file atomically. Validation, reading and writing the file run in worker threads, so
the event loop keeps serving the data path; a change of one rule (:meth:`Controller.change_rule`)
validates, compiles and routes that rule only, so its cost does not grow with the number of rules.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mqferry.config.env import expand, keep_references
from mqferry.config.loader import (
    AppConfig,
    ComponentSpec,
    RuleSpec,
    read_yaml,
    validate_config,
    validate_rule,
)
from mqferry.config.persist import ConfigWriter, file_digest
from mqferry.errors import MqferryError
from mqferry.registry import ActionType, ConnectorType, SourceType
from mqferry.runtime.app import RuntimeRule
from mqferry.tasks import describe

if TYPE_CHECKING:
    from mqferry.plugins import PluginSet
    from mqferry.registry import Registries
    from mqferry.rules import FunctionTable
    from mqferry.runtime.app import App
    from mqferry.types import Action, Connector, Source

log = logging.getLogger(__name__)

__all__ = ["ConfigConflictError", "Controller", "Plan", "apply_config", "apply_rule",
           "plan_changes"]

_RESTART_SECTIONS = ("mqtt", "api", "node", "data_dir")

#: How long a component's stop() may take when it does not say (``stop_timeout``):
#: the actions' default flush timeout (30 s) plus :data:`STOP_MARGIN`.
STOP_TIMEOUT = 40.0
#: Added to a component's own ``stop_timeout``: closing its clients after the flush.
STOP_MARGIN = 10.0
#: How long a component's start() may take (it must not wait for remote systems).
START_TIMEOUT = 30.0


class ConfigConflictError(MqferryError):
    """The config file changed on disk since it was loaded; a write-back would lose that edit."""


@dataclass(slots=True)
class Plan:
    """What a new configuration changes, by component id.

    ``start`` lists what will be built and started (new, re-enabled, or changed: a changed
    component is stopped and started again), ``stop`` what will be stopped (removed, disabled, or
    changed).
    """

    start: dict[str, list[str]] = field(default_factory=dict)
    stop: dict[str, list[str]] = field(default_factory=dict)
    rules_changed: list[str] = field(default_factory=list)
    subscriptions: tuple[list[str], list[str]] = ([], [])
    restart_needed: list[str] = field(default_factory=list)
    #: The MQTT connection was re-established (same client id and session) because a replaced
    #: action stopped with messages it could not deliver.
    mqtt_reconnected: bool = False
    #: Components whose stop() or start() raised or overran its bound, with the reason; the
    #: change was applied all the same.
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Nothing to do."""
        return not (any(self.start.values()) or any(self.stop.values()) or self.rules_changed
                    or any(self.subscriptions) or self.restart_needed)

    def to_json(self) -> dict[str, Any]:
        """The plan as the API and the CLI show it."""
        added, removed = self.subscriptions
        return {"start": self.start, "stop": self.stop, "rules_changed": self.rules_changed,
                "subscribed": added, "unsubscribed": removed,
                "restart_needed": self.restart_needed,
                "mqtt_reconnected": self.mqtt_reconnected, "failed": self.failed}


def _changed(old: ComponentSpec | None, new: ComponentSpec | None) -> bool:
    if old is None or new is None:
        return old is not new
    # Types are compared by name: the registration hooks build new type objects on each call.
    return bool(old.type.name != new.type.name or old.config != new.config)


def plan_changes(app: App, new: AppConfig) -> Plan:
    """What applying ``new`` to ``app`` would start, stop and re-route."""
    old = app.config
    plan = Plan()
    conn_start, conn_stop = _kind_plan(
        old.connectors, new.connectors, set(app.connectors), lambda s: s.enabled, set())
    rebuilt = set(conn_start) | set(conn_stop)
    plan.start["connectors"], plan.stop["connectors"] = conn_start, conn_stop
    will_run = (set(app.connectors) - set(conn_stop)) | set(conn_start)

    def runnable(spec: ComponentSpec) -> bool:
        return spec.enabled and (spec.connector_id is None or spec.connector_id in will_run)

    for kind, running in (("actions", app.actions), ("sources", app.sources)):
        plan.start[kind], plan.stop[kind] = _kind_plan(
            getattr(old, kind), getattr(new, kind), set(running), runnable, rebuilt)
    for rid in sorted(set(old.rules) | set(new.rules)):
        o, n = old.rules.get(rid), new.rules.get(rid)
        if o is None or n is None or o.config != n.config:
            plan.rules_changed.append(rid)
    filters = {f for r in new.rules.values() if r.config.enable
               for f in r.compiled.topic_filters}
    current = app.topic_filters
    plan.subscriptions = (sorted(filters - current), sorted(current - filters))
    plan.restart_needed = [s for s in _RESTART_SECTIONS
                           if getattr(old.raw, s) != getattr(new.raw, s)]
    return plan


def _kind_plan(old: dict[str, ComponentSpec], new: dict[str, ComponentSpec], running: set[str],
               runnable: Callable[[ComponentSpec], bool],
               rebuilt_connectors: set[str]) -> tuple[list[str], list[str]]:
    start, stop = [], []
    for cid in sorted(set(old) | set(new)):
        o, n = old.get(cid), new.get(cid)
        want = n is not None and runnable(n)
        changed = _changed(o, n) or (n is not None and n.connector_id in rebuilt_connectors)
        if cid in running and (not want or changed):
            stop.append(cid)
        if want and (cid not in running or changed):
            start.append(cid)
    return start, stop


async def apply_config(app: App, new: AppConfig) -> Plan:
    """Apply ``new`` to ``app``, touching only what changed (see the module docs).

    Raises:
        Exception: whatever a component factory raised; nothing was applied.
    """
    plan = plan_changes(app, new)
    # 1. Build everything first: a factory that raises leaves the running app untouched.
    fresh_conns, fresh = _build(app, plan, new)
    running = app.running
    # 2. Sources that change stop first, so two consumers never share a group member's work.
    old_sources: dict[str, Source] = {cid: app.sources.pop(cid) for cid in plan.stop["sources"]}
    await _stop_all("source", old_sources, plan)
    _carry_counters(old_sources, fresh["sources"])
    # 3. New connectors and actions start before anything routes to them.
    if running:
        await _start_all("connector", fresh_conns, plan)
        await _start_all("action", fresh["actions"], plan)
    # 4. Swap components, rules and routing without yielding to the event loop.
    old_actions: dict[str, Action] = {cid: app.actions.pop(cid) for cid in plan.stop["actions"]}
    old_conns: dict[str, Connector] = {cid: app.connectors.pop(cid)
                                       for cid in plan.stop["connectors"]}
    app.connectors.update(fresh_conns)
    app.context.connectors = app.connectors
    app.actions.update(fresh["actions"])
    app.set_rules(_rules(app, new))
    app.config = new
    # 5. Replaced actions flush what they hold; then their connectors go.
    await _stop_all("action", old_actions, plan)
    _carry_counters(old_actions, fresh["actions"])
    await _stop_all("connector", old_conns, plan)
    stranded = sum(_unsettled(a) for a in old_actions.values())
    if stranded and running:
        # A replaced action gave up flushing (its target is down): the MQTT acknowledgements it
        # held would block every later one. Reconnect, with the same client id and persistent
        # session, so the broker redelivers them to the new configuration.
        log.warning("%d messages were left undelivered by replaced actions; reconnecting the "
                    "MQTT session so the broker redelivers them", stranded)
        await app.mqtt.stop()
        app.mqtt.acks.reset()
        await app.mqtt.start()
        plan.mqtt_reconnected = True
    # 6. Same MQTT session, new subscriptions.
    await app.mqtt.set_subscriptions(app.topic_filters)
    # 7. Sources last: their events find the new rules and actions ready.
    app.sources.update(fresh["sources"])
    if running:
        await _start_all("source", fresh["sources"], plan)
    for section in plan.restart_needed:
        log.warning("the %s section changed: it takes effect after a restart", section)
    log.info("configuration applied: %s", plan.to_json())
    return plan


def _bound(component: Any) -> float:
    own = getattr(component, "stop_timeout", None)
    if isinstance(own, int | float) and not isinstance(own, bool) and own > 0:
        return float(own) + STOP_MARGIN
    return STOP_TIMEOUT


async def _bounded(what: str, cid: str, call: Callable[[], Any], bound: float,
                   plan: Plan) -> None:
    """Run ``call()`` (a component's start or stop) for at most ``bound`` seconds.

    A failure or an overrun is logged and recorded in ``plan.failed``; it never propagates. An
    overrunning call is cancelled and left to finish on its own: one that ignores cancellation
    must not hold the config lock either.
    """
    task = asyncio.ensure_future(call())
    try:
        done, _ = await asyncio.wait({task}, timeout=bound)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_late_outcome)
        reason = f"{what} did not finish within {bound:g}s"
    elif task.cancelled():
        reason = f"{what} was cancelled"
    elif (exc := task.exception()) is not None:
        log.error("%s: %s failed", cid, what, exc_info=exc)
        reason = f"{what} failed: {describe(exc)}"
    else:
        return
    log.error("%s: %s; the configuration is applied all the same", cid, reason)
    plan.failed[cid] = reason


def _late_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("a start or stop that overran its bound ended with: %s", describe(exc))


async def _stop_all(kind: str, components: dict[str, Any], plan: Plan) -> None:
    for cid in components:
        log.info("stopping %s %s", kind, cid)
    # Concurrently: the lock is held for the slowest stop, not for their sum.
    await asyncio.gather(*(_bounded("stop", cid, comp.stop, _bound(comp), plan)
                           for cid, comp in components.items()))


async def _start_all(kind: str, components: dict[str, Any], plan: Plan) -> None:
    for cid, comp in components.items():
        log.info("starting %s %s", kind, cid)
        await _bounded("start", cid, comp.start, START_TIMEOUT, plan)


def _build(app: App, plan: Plan, new: AppConfig
           ) -> tuple[dict[str, Connector], dict[str, dict[str, Any]]]:
    ctx = app.context
    connectors: dict[str, Connector] = {cid: c for cid, c in app.connectors.items()
                                        if cid not in plan.stop["connectors"]}
    fresh_conns: dict[str, Connector] = {}
    for cid in plan.start["connectors"]:
        spec = new.connectors[cid]
        assert isinstance(spec.type, ConnectorType)
        fresh_conns[cid] = spec.type.factory(spec.name, spec.config, ctx)
    connectors.update(fresh_conns)
    fresh: dict[str, dict[str, Any]] = {}
    for kind in ("actions", "sources"):
        fresh[kind] = {}
        for cid in plan.start[kind]:
            spec = getattr(new, kind)[cid]
            conn = connectors.get(spec.connector_id or "")
            assert isinstance(spec.type, ActionType | SourceType)
            fresh[kind][cid] = spec.type.factory(spec.name, spec.config, conn, ctx)
    return fresh_conns, fresh


def _carry_counters(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Add the counters of each stopped component to its rebuilt self (same id).

    A settings change rebuilds a component; its counters are the evidence of what happened
    (a ``failed.too_large``, say), so they survive it, as a rule's do, and only
    ``PUT .../metrics/reset`` zeroes them. Called once the old component stopped, so nothing
    it settles while flushing is lost; the gauges are the new component's own.
    """
    for cid, component in old.items():
        rebuilt = new.get(cid)
        if rebuilt is None:
            continue
        for sample in component.metrics.samples():
            if not sample.gauge and sample.value:
                rebuilt.metrics.inc(sample.name, int(sample.value))
        rebuilt.metrics.started_at = component.metrics.started_at


def _unsettled(action: Action) -> int:
    """What a stopped action still holds, by its ``queuing`` and ``inflight`` gauges."""
    snap = action.metrics.snapshot()
    return int(snap.get("queuing", 0)) + int(snap.get("inflight", 0))


def _rules(app: App, new: AppConfig) -> dict[str, RuntimeRule]:
    out: dict[str, RuntimeRule] = {}
    for rid, spec in new.rules.items():
        if not spec.config.enable:
            continue
        actions = [app.actions[a] for a in spec.action_ids if a in app.actions]
        current = app.rules.get(rid)
        if current is not None and current.compiled.sql == spec.compiled.sql:
            rule = current  # unchanged SQL: keep the compiled rule and its counters
        else:
            rule = RuntimeRule(spec, actions)
            if current is not None:
                rule.metrics = current.metrics  # EMQX keeps a rule's counters across updates
        rule.actions = actions
        out[rid] = rule
    return out


async def apply_rule(app: App, rule_id: str, spec: RuleSpec | None, new: AppConfig) -> Plan:
    """Apply a change of one rule: ``spec`` replaces the rule (``None`` removes it).

    ``new`` is the app's configuration with that change (and no other). The rule leaves or joins
    the routing in one step of the event loop, without rebuilding the routing of the other rules;
    an unchanged SQL keeps its compiled rule, and a rule keeps its counters across updates.

    Raises:
        ValueError: the rule has inline actions (their components need :func:`apply_config`).
    """
    if spec is not None and len(spec.action_ids) != sum(isinstance(a, str)
                                                        for a in spec.config.actions):
        raise ValueError(f"rule {rule_id} has inline actions")
    plan = Plan(start={k: [] for k in ("connectors", "actions", "sources")},
                stop={k: [] for k in ("connectors", "actions", "sources")},
                rules_changed=[rule_id])
    current = app.rules.get(rule_id)
    added: list[str] = []
    removed: list[str] = []
    if spec is None or not spec.config.enable:
        removed = app.remove_rule(rule_id)
    else:
        actions = [app.actions[a] for a in spec.action_ids if a in app.actions]
        if current is not None and current.compiled.sql == spec.compiled.sql:
            current.actions = actions  # unchanged SQL: same routing, same counters
        else:
            rule = RuntimeRule(spec, actions)
            if current is not None:
                rule.metrics = current.metrics  # EMQX keeps a rule's counters across updates
            gone = app.remove_rule(rule_id)
            new_filters = app.add_rule(rule)
            added = sorted(set(new_filters) - set(gone))
            removed = sorted(set(gone) - set(new_filters))
    app.config = new
    plan.subscriptions = (added, removed)
    if added or removed:
        await app.mqtt.set_subscriptions(app.subscribed_filters())
    log.info("rule %s %s", rule_id, "removed" if spec is None else "applied")
    return plan


def _with_rule(config: AppConfig, rule_id: str, spec: RuleSpec | None) -> AppConfig:
    """``config`` with one rule replaced or removed; the other sections are shared."""
    rules = dict(config.rules)
    raw_rules = dict(config.raw.rules)
    if spec is None:
        rules.pop(rule_id, None)
        raw_rules.pop(rule_id, None)
    else:
        rules[rule_id] = spec
        raw_rules[rule_id] = spec.config
    raw = config.raw.model_copy(update={"rules": raw_rules})
    return AppConfig(raw, config.connectors, config.actions, config.sources, rules)


def _share_unchanged(old: dict[str, Any], new: dict[str, Any]) -> None:
    """Put back into ``new`` the entries of ``old`` it holds unchanged (equal copies).

    The write-back reuses the text of entries it already wrote by identity, so a change to one
    component does not re-render every rule.
    """
    for section, entries in new.items():
        before = old.get(section)
        if isinstance(entries, dict) and isinstance(before, dict):
            for key, value in entries.items():
                if key in before and before[key] == value:
                    entries[key] = before[key]


def _has_inline(body: Any) -> bool:
    actions = body.get("actions") if isinstance(body, dict) else None
    return isinstance(actions, list) and any(not isinstance(a, str) for a in actions)


class Controller:
    """The configuration of a running app: reload from the file, change through the API.

    Changes are serialised: one is validated and applied before the next starts. The file is
    written back by a :class:`~mqferry.config.persist.ConfigWriter`: after the change is applied,
    off the event loop, bursts coalesced; :meth:`flush` waits for it.

    Args:
        app: the running app.
        plugins: the plugins the configuration is validated against.
        path: the config file; ``None`` keeps changes in memory only.
        data: the mapping the app's configuration was validated from (read from ``path`` when
            not given).
        write_interval: the shortest time between two write-backs of the file, in seconds.
    """

    def __init__(self, app: App, plugins: PluginSet, *, path: str | Path | None = None,
                 data: dict[str, Any] | None = None, write_interval: float = 0.5) -> None:
        self.app = app
        self.plugins = plugins
        self.path = Path(path) if path is not None else None
        if data is None:
            data = read_yaml(self.path, env=False) if self.path is not None else {}
        #: The mapping of the running configuration. Replaced on each change, never edited in
        #: place: the writer may be writing an earlier one in its thread.
        self.data: dict[str, Any] = copy.deepcopy(data)
        self._writer = (ConfigWriter(self.path, interval=write_interval)
                        if self.path is not None else None)
        self._lock = asyncio.Lock()
        self._registries: Registries | None = None
        self._functions: FunctionTable | None = None
        now = _now_ms()
        self.loaded_at = now
        #: component and rule id -> (created_at, last_modified_at) in epoch milliseconds
        self.times: dict[str, tuple[int, int]] = {}
        self._touch_all(now)

    def registries(self) -> Registries:
        """The plugins' type registries, built once (the hooks build new ones on each call)."""
        if self._registries is None:
            self._registries = self.plugins.registries()
        return self._registries

    def function_table(self) -> FunctionTable:
        """The plugins' rule functions, built once."""
        if self._functions is None:
            self._functions = self.plugins.function_table()
        return self._functions

    def validate(self, data: dict[str, Any]) -> AppConfig:
        """Validate a whole configuration mapping (blocking: call it in a worker thread).

        ``data`` is the file's text: its ``${NAME}`` references are expanded for the validation
        and kept in :attr:`data`.

        Raises:
            ConfigError: with every problem.
        """
        return validate_config(expand(data), self.registries(), self.function_table())

    async def reload(self) -> Plan:
        """Read the config file again and apply it.

        Raises:
            ConfigError: the file is invalid; nothing was applied.
        """
        if self.path is None:
            raise MqferryError("this instance was not started from a config file")
        path = self.path
        async with self._lock:
            await self.flush()  # what the API changed is in the file before it is read back

            def read() -> tuple[dict[str, Any], str | None, AppConfig]:
                data = read_yaml(path, env=False)
                return data, file_digest(path), self.validate(data)

            data, digest, config = await asyncio.to_thread(read)
            plan = await self.app.reconfigure(config)
            old, self.data = self.data, data
            if self._writer is not None:
                self._writer.loaded(digest)
            self._touch_changed(old)
            return plan

    async def change(self, mutate: Callable[[dict[str, Any]], None]) -> Plan:
        """Change the configuration: ``mutate`` edits a copy of the mapping in place.

        The result is validated (in a worker thread), applied, then written back to the file.
        ``mutate`` runs in the worker thread too, under the change lock; it may raise to refuse
        the change.

        Raises:
            ConfigError: the result is invalid; nothing was applied or written.
            ConfigConflictError: the file was edited since it was loaded and not reloaded.
        """
        async with self._lock:
            await self._check_file()
            current = self.data

            def prepare() -> tuple[dict[str, Any], AppConfig]:
                data = copy.deepcopy(current)
                mutate(data)
                # What a client sent: the file's ${NAME} text back where it echoed the value.
                data = keep_references(data, current)
                _share_unchanged(current, data)
                return data, self.validate(data)

            data, config = await asyncio.to_thread(prepare)
            plan = await self.app.reconfigure(config)
            old, self.data = self.data, data
            self._touch_changed(old)
            self._persist()
            return plan

    async def change_rule(
        self, rule_id: str,
        edit: Callable[[dict[str, Any] | None], dict[str, Any] | None],
    ) -> Plan:
        """Create, replace or remove one rule, touching nothing else.

        ``edit`` gets the rule's stored mapping (``None``: no such rule) and returns the new one
        (``None``: remove the rule); it may raise to refuse the change. Only this rule is
        validated, compiled and routed (see :func:`apply_rule`), so the cost does not grow with
        the number of rules. A rule with inline actions, before or after, goes through
        :meth:`change`, as their components are built, started and stopped with it.

        Raises:
            ConfigError: the rule is invalid; nothing was applied or written.
            ConfigConflictError: the file was edited since it was loaded and not reloaded.
        """
        async with self._lock:
            await self._check_file()
            rules: dict[str, Any] = self.data.get("rules") or {}
            old = rules.get(rule_id)
            body = edit(copy.deepcopy(old))
            if body is not None:
                body = keep_references(body, old, f"rules.{rule_id}")
            if _has_inline(old) or _has_inline(body):
                return await self._change_rule_fully(rule_id, body)
            spec = None
            if body is not None:
                spec = await asyncio.to_thread(validate_rule, self.app.config, rule_id,
                                               expand(body, f"rules.{rule_id}"),
                                               self.registries(), self.function_table())
            plan = await apply_rule(self.app, rule_id, spec,
                                    _with_rule(self.app.config, rule_id, spec))
            rules = dict(rules)
            if body is None:
                del rules[rule_id]
                self.times.pop(f"rules/{rule_id}", None)
            else:
                rules[rule_id] = body
                now = _now_ms()
                created = self.times.get(f"rules/{rule_id}", (now, now))[0] if old else now
                self.times[f"rules/{rule_id}"] = (created, now)
            self.data = {**self.data, "rules": rules}
            self._persist()
            return plan

    async def _change_rule_fully(self, rule_id: str, body: dict[str, Any] | None) -> Plan:
        current = self.data

        def prepare() -> tuple[dict[str, Any], AppConfig]:
            data = copy.deepcopy(current)
            rules = data.get("rules") or {}
            if body is None:
                rules.pop(rule_id, None)
            else:
                rules[rule_id] = body
            data["rules"] = rules
            return data, self.validate(data)

        data, config = await asyncio.to_thread(prepare)
        plan = await self.app.reconfigure(config)
        old, self.data = self.data, data
        self._touch_changed(old)
        self._persist()
        return plan

    async def flush(self) -> None:
        """Return when the file holds every applied change (no-op without a file).

        Raises:
            OSError: the write failed (it is retried later).
        """
        if self._writer is not None:
            await self._writer.flush()

    async def _check_file(self) -> None:
        writer = self._writer
        if writer is None:
            return
        if writer.conflict is not None:
            raise ConfigConflictError(writer.conflict)
        # While a write of ours is under way the file is ours; the writer checks again before
        # each write. Otherwise a stat tells whether the (costly) comparison is needed at all.
        if writer.idle and writer.maybe_edited() and await asyncio.to_thread(writer.edited):
            raise ConfigConflictError(
                f"{self.path} was edited since it was loaded: reload it first "
                "(mqferry config reload, or SIGHUP), then repeat the change")

    def _persist(self) -> None:
        if self._writer is not None:
            self._writer.write_soon(self.data)

    def _touch_all(self, now: int) -> None:
        for cid in self._ids(self.data):
            self.times[cid] = (now, now)

    def _touch_changed(self, old: dict[str, Any]) -> None:
        now = _now_ms()
        before, after = self._ids(old), self._ids(self.data)
        for cid, body in after.items():
            if cid not in before:
                self.times[cid] = (now, now)
            elif before[cid] != body:
                self.times[cid] = (self.times.get(cid, (now, now))[0], now)
        for cid in set(before) - set(after):
            self.times.pop(cid, None)

    @staticmethod
    def _ids(data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for kind in ("connectors", "actions", "sources"):
            for type_name, entries in (data.get(kind) or {}).items():
                for name, body in (entries or {}).items():
                    out[f"{kind}/{type_name}:{name}"] = body
        for rid, body in (data.get("rules") or {}).items():
            out[f"rules/{rid}"] = body
        return out


def _now_ms() -> int:
    return int(time.time() * 1000)

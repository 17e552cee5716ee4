"""Applying a configuration, or one rule, to a running app (the steps in :mod:`..reconfig`).

Every start and stop of a component runs with a bound; one that fails or overruns is logged and
reported in :attr:`Plan.failed`, and the change goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from mqferry._runtime.leftovers import disk_directory, warn_removed
from mqferry._runtime.reconfig.plan import Plan, plan_changes
from mqferry._tasks import describe

if TYPE_CHECKING:
    from mqferry._config.loader import AppConfig, RuleSpec
    from mqferry._runtime.app import App
    from mqferry._types import Action, Connector, Source

log = logging.getLogger(__name__)

__all__ = ["START_TIMEOUT", "STOP_MARGIN", "STOP_TIMEOUT", "apply_config", "apply_rule"]

#: How long a component's stop() may take when it does not say (``stop_timeout``):
#: the actions' default flush timeout (30 s) plus :data:`STOP_MARGIN`.
STOP_TIMEOUT = 40.0
#: Added to a component's own ``stop_timeout``: closing its clients after the flush.
STOP_MARGIN = 10.0
#: How long a component's start() may take (it must not wait for remote systems).
START_TIMEOUT = 30.0


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
    # 3. New connectors and actions start before anything routes to them; but an exclusive
    # action (a disk buffer) that replaces a running one starts once that one stopped (step 5).
    # So does any action replacing one with a disk buffer: it sends what that one keeps there.
    after = {cid: a for cid, a in fresh["actions"].items()
             if cid in plan.stop["actions"] and (
                 getattr(a, "exclusive", False) is True
                 or getattr(app.actions.get(cid), "exclusive", False) is True)}
    if running:
        await _start_all("connector", fresh_conns, plan)
        await _start_all("action", {cid: a for cid, a in fresh["actions"].items()
                                    if cid not in after}, plan)
    # 4. Swap components, rules and routing without yielding to the event loop.
    old_actions: dict[str, Action] = {cid: app.actions.pop(cid) for cid in plan.stop["actions"]}
    old_conns: dict[str, Connector] = {cid: app.connectors.pop(cid)
                                       for cid in plan.stop["connectors"]}
    app.connectors.update(fresh_conns)
    app.context.connectors = app.connectors
    app.actions.update(fresh["actions"])
    app.set_rules(app.builder.rules(new, app.actions, app.rules))
    app.config = new
    # 5. Replaced actions flush what they hold; then their connectors go. Meanwhile the
    # exclusive ones that replace them hold what is routed to them (unsecured: its MQTT acks
    # wait); they start now, taking over what the old ones kept on disk.
    await _stop_all("action", old_actions, plan)
    successors = {cid: a for cid, a in fresh["actions"].items()
                  if _takes_over(old_actions.get(cid), a)}
    stranded = _count_unsent(old_actions, successors)
    for cid in sorted(old_actions.keys() - successors.keys()):
        # counting what a removed action left on disk reads its segments: not on the loop
        await asyncio.to_thread(warn_removed, cid, old_actions[cid])
    _carry_counters(old_actions, fresh["actions"])
    if running:
        await _start_all("action", after, plan)
    await _stop_all("connector", old_conns, plan)
    if stranded and running:
        # A replaced action gave up flushing (its target is down): the MQTT acknowledgements it
        # held would block every later one. Reconnect, with the same client id and persistent
        # session, so the broker redelivers them to the new configuration.
        log.warning("%d messages were left undelivered by replaced actions; reconnecting the "
                    "MQTT session so the broker redelivers them", stranded)
        await app.reconnect_mqtt()
        plan.mqtt_reconnected = True
        # What they held of the sources' events will never settle either: the sources that
        # keep running consume their records in flight again, committing nothing past them.
        _redeliver(app.sources, f"replaced actions left {stranded} outputs unsettled")
    # 6. Same MQTT session, new subscriptions.
    await _subscribe(app, app.topic_filters, plan)
    # 7. Sources last: their events find the new rules and actions ready.
    app.sources.update(fresh["sources"])
    if running:
        await _start_all("source", fresh["sources"], plan)
    for section in plan.restart_needed:
        log.warning("the %s section changed: it takes effect after a restart", section)
    log.info("configuration applied: %s", plan.to_json())
    return plan


async def _subscribe(app: App, filters: set[str], plan: Plan) -> None:
    """Subscribe the MQTT sessions to ``filters``, the change already applied.

    A failure (the broker refused or did not answer) is reported in :attr:`Plan.failed`, not
    raised: the rules run as changed, and each session subscribes to the current filters again
    whenever it reconnects. Raising here would report a change as refused that is in force.
    """
    try:
        await app.set_subscriptions(filters)
    except Exception as exc:
        reason = (f"subscribing failed: {describe(exc)}; the MQTT session subscribes again "
                  "when it reconnects")
        log.error("mqtt: %s", reason)
        plan.failed["mqtt"] = reason


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
    build = app.builder
    fresh_conns = {cid: build.connector(new.connectors[cid])
                   for cid in plan.start["connectors"]}
    connectors = {cid: c for cid, c in app.connectors.items()
                  if cid not in plan.stop["connectors"]}
    connectors.update(fresh_conns)
    fresh: dict[str, dict[str, Any]] = {
        "actions": {cid: build.action(new.actions[cid], connectors)
                    for cid in plan.start["actions"]},
        "sources": {cid: build.source(new.sources[cid], connectors)
                    for cid in plan.start["sources"]},
    }
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


def _redeliver(sources: Mapping[str, Source], reason: str) -> None:
    """Have each source that can (its ``redeliver`` method) consume its records in flight again."""
    for cid, source in sources.items():
        redeliver = getattr(source, "redeliver", None)
        if callable(redeliver):
            try:
                redeliver(reason)
            except Exception:
                log.exception("%s: redeliver failed", cid)


def _unsettled(action: Action) -> int:
    """What a stopped action still holds, by its ``queuing`` and ``inflight`` gauges."""
    snap = action.metrics.snapshot()
    return int(snap.get("queuing", 0)) + int(snap.get("inflight", 0))


def _kept(action: Action) -> int:
    """What a stopped action left in its disk buffer (its ``kept`` attribute), for its successor."""
    kept = getattr(action, "kept", 0)
    return kept if isinstance(kept, int) and not isinstance(kept, bool) and kept > 0 else 0


def _takes_over(old: Action | None, new: Action) -> bool:
    """Whether ``new``, replacing ``old``, sends what ``old`` kept on disk: it is exclusive,
    or it opens the same buffer directory (``disk_directory``), whatever its buffer mode."""
    if old is None:
        return False
    if getattr(new, "exclusive", False) is True:
        return True
    mine = disk_directory(new)
    return mine is not None and mine == disk_directory(old)


def _count_unsent(actions: Mapping[str, Action], successors: Mapping[str, Action]) -> int:
    """Count what each stopped action still holds as ``dropped.replaced``; the total.

    Those records are never sent by it, and its gauges go with it: uncounted, they would
    leave ``matched = success + failed + dropped + queuing + inflight`` short by as many on
    the id's carried counters. Their MQTT messages were not acknowledged (at least once, a
    memory buffer): the session is then renewed, and the broker delivers them again, to the
    new action, which counts them as it counts any message. With ``at_most_once`` they were
    acknowledged, and are lost. What an action kept in its disk buffer is not counted: a
    successor (in ``successors``) takes the buffer over, sends them and counts them as it
    sends them; an action removed leaves them there for the next action of its name (with a
    warning naming the directory, from :func:`apply_config`). Counted before the counters are
    carried, on the old action.
    """
    total = 0
    for cid, action in actions.items():
        unsent = _unsettled(action)
        kept = min(_kept(action), unsent)
        if cid not in successors:
            unsent -= kept  # left in its disk buffer (apply_config says so)
        elif kept:
            unsent -= kept
            log.info("action %s: the %d records it kept in its disk buffer are sent by its "
                     "replacement", cid, kept)
        if unsent:
            action.metrics.inc("dropped", unsent)
            action.metrics.inc("dropped.replaced", unsent)
            log.warning("action %s: %d records it had not sent are counted as dropped.replaced; "
                        "those whose MQTT messages were not acknowledged are delivered again by "
                        "the broker", cid, unsent)
        total += unsent
    return total


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
    elif current is not None and current.compiled.sql == spec.compiled.sql:
        app.builder.rule(spec, app.actions, current)  # same routing, same counters
    else:
        rule = app.builder.rule(spec, app.actions, current)
        gone = app.remove_rule(rule_id)
        new_filters = app.add_rule(rule)
        added = sorted(set(new_filters) - set(gone))
        removed = sorted(set(gone) - set(new_filters))
    app.config = new
    plan.subscriptions = (added, removed)
    if added or removed:
        await _subscribe(app, app.topic_filters, plan)
    log.info("rule %s %s", rule_id, "removed" if spec is None else "applied")
    return plan

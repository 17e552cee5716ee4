"""What a new configuration changes: the :class:`Plan` of a reconfiguration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mqferry._config.loader import AppConfig, ComponentSpec
    from mqferry._runtime.app import App

__all__ = ["Plan", "plan_changes"]

#: The sections a running app does not take up: a change needs a restart.
_RESTART_SECTIONS = ("mqtt", "api", "node", "data_dir")


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
    # Against what runs, not the last config applied: a section changed and changed back by
    # two reloads needs no restart.
    plan.restart_needed = [s for s in _RESTART_SECTIONS
                           if getattr(app.started_raw, s) != getattr(new.raw, s)]
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

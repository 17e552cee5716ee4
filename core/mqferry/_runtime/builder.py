"""The one place the runtime's parts are built from their validated specs.

The app's start-up, a configuration change and the API's probe all build connectors, actions,
sources and rules here, so a component is made the same way whichever path asks for it: its
type's factory gets its name, validated config, connector and the runtime context; a rule gets
its actions and the app's :class:`~mqferry._runtime.rules.RuleEnv` (dead letters, log limiter,
worker thread).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from mqferry._errors import MqferryError, PluginError
from mqferry._metrics import Metrics
from mqferry._registry import ActionType, ConnectorType, SourceType
from mqferry._runtime.rules import RuleEnv, RuntimeRule

if TYPE_CHECKING:
    from mqferry._config.loader import AppConfig, ComponentSpec, RuleSpec
    from mqferry._types import Action, Connector, RuntimeContext, Source

log = logging.getLogger(__name__)

_C = TypeVar("_C")

__all__ = ["Builder", "ConnectorNotRunning", "Parts"]


class ConnectorNotRunning(MqferryError):
    """An action or source cannot be built: the connector it is bound to does not run.

    Attributes:
        component_id: the action or source.
        connector_id: its connector.
    """

    def __init__(self, component_id: str, connector_id: str) -> None:
        super().__init__(f"{component_id}: connector {connector_id} is not running")
        self.component_id = component_id
        self.connector_id = connector_id


@dataclass(slots=True)
class Parts:
    """What a whole configuration builds: every enabled component and rule, by id."""

    connectors: dict[str, Connector] = field(default_factory=dict)
    actions: dict[str, Action] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    rules: dict[str, RuntimeRule] = field(default_factory=dict)


class Builder:
    """Builds connectors, actions, sources and rules for one app.

    Args:
        context: what components get from the runtime.
        env: what rules get from the app.
    """

    def __init__(self, context: RuntimeContext, env: RuleEnv) -> None:
        self.context = context
        self.env = env

    def connector(self, spec: ComponentSpec) -> Connector:
        """Build the connector of ``spec``; whatever its factory raises propagates."""
        assert isinstance(spec.type, ConnectorType)
        return spec.type.factory(spec.name, spec.config, self.context)

    def action(self, spec: ComponentSpec, connectors: Mapping[str, Connector]) -> Action:
        """Build the action of ``spec``, bound to its connector in ``connectors``.

        Raises:
            ConnectorNotRunning: ``spec`` names a connector that ``connectors`` lacks.
        """
        assert isinstance(spec.type, ActionType)
        return _checked(spec, spec.type.factory(spec.name, spec.config,
                                                _connector(spec, connectors), self.context))

    def source(self, spec: ComponentSpec, connectors: Mapping[str, Connector]) -> Source:
        """Build the source of ``spec`` (see :meth:`action`)."""
        assert isinstance(spec.type, SourceType)
        return _checked(spec, spec.type.factory(spec.name, spec.config,
                                                _connector(spec, connectors), self.context))

    def rule(self, spec: RuleSpec, actions: Mapping[str, Action],
             current: RuntimeRule | None = None) -> RuntimeRule:
        """The running rule of ``spec``, sending to its actions that run in ``actions``.

        ``current`` is the running rule with that id: kept (with its new actions) when its SQL
        is unchanged; otherwise its counters go to the new rule, as EMQX keeps a rule's counters
        across updates.
        """
        targets = [actions[a] for a in spec.action_ids if a in actions]
        if current is not None and current.compiled.sql == spec.compiled.sql:
            current.actions = targets
            current.env = self.env
            return current
        rule = RuntimeRule(spec, targets, self.env)
        if current is not None:
            rule.metrics = current.metrics
        return rule

    def rules(self, config: AppConfig, actions: Mapping[str, Action],
              current: Mapping[str, RuntimeRule]) -> dict[str, RuntimeRule]:
        """The enabled rules of ``config`` (see :meth:`rule`)."""
        return {rid: self.rule(spec, actions, current.get(rid))
                for rid, spec in config.rules.items() if spec.config.enable}

    def build(self, config: AppConfig) -> Parts:
        """Every enabled component and rule of ``config``, none started.

        An action or source whose connector is disabled is left out, with a warning.
        """
        parts = Parts()
        for cid, spec in config.connectors.items():
            if spec.enabled:
                parts.connectors[cid] = self.connector(spec)
        for cid, spec in config.actions.items():
            if spec.enabled and _bound(spec, parts.connectors):
                parts.actions[cid] = self.action(spec, parts.connectors)
        for cid, spec in config.sources.items():
            if spec.enabled and _bound(spec, parts.connectors):
                parts.sources[cid] = self.source(spec, parts.connectors)
        parts.rules = self.rules(config, parts.actions, {})
        return parts


def _checked(spec: ComponentSpec, component: _C) -> _C:
    """``component``, once it is known to carry its counters where the runtime reads them.

    Raises:
        PluginError: its ``metrics`` is not a :class:`~mqferry.Metrics` (a subclass is fine):
            the rules, the API and the metrics history read them on every message and sample.
    """
    metrics = getattr(component, "metrics", None)
    if not isinstance(metrics, Metrics):
        raise PluginError(
            f"{spec.id}: the {spec.type.name} type built a component whose metrics is "
            f"{type(metrics).__name__}, not mqferry.Metrics (or a subclass of it)",
            component=spec.type.name)
    return component


def _connector(spec: ComponentSpec, connectors: Mapping[str, Connector]) -> Connector | None:
    if spec.connector_id is None:
        return None
    connector = connectors.get(spec.connector_id)
    if connector is None:
        raise ConnectorNotRunning(spec.id, spec.connector_id)
    return connector


def _bound(spec: ComponentSpec, connectors: Mapping[str, Connector]) -> bool:
    if spec.connector_id is None or spec.connector_id in connectors:
        return True
    log.warning("%s is not started: its connector %s is disabled", spec.id, spec.connector_id)
    return False

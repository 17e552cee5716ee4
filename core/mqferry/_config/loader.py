"""Load a YAML config file and validate it against the registered plugin types.

Every problem is collected and reported as ``path.to.field: message``; nothing is applied from a
file with any problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from mqferry._config.env import expand_partly
from mqferry._config.models import NAME_PATTERN, InlineAction, RawConfig, RuleConfig
from mqferry._config.suggest import did_you_mean, known_fields
from mqferry._config.yamlfile import read_yaml
from mqferry._errors import ConfigError
from mqferry._rules.source_names import source_id

if TYPE_CHECKING:
    from mqferry._registry import ActionType, ConnectorType, Registries, SourceType
    from mqferry._rules import CompiledRule, FunctionTable

_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True, slots=True)
class ComponentSpec:
    """One validated connector, action or source.

    Attributes:
        id: ``<type>:<name>``.
        type: the registered type object.
        name: the configured name.
        config: the validated model instance.
    """

    id: str
    type: ConnectorType | ActionType | SourceType
    name: str
    config: Any

    @property
    def enabled(self) -> bool:
        """Whether the component is enabled."""
        return bool(getattr(self.config, "enable", True))

    @property
    def connector_id(self) -> str | None:
        """The id of the connector this action or source is bound to."""
        name = getattr(self.config, "connector", None)
        ctype = getattr(self.type, "connector_type", None)
        return f"{ctype}:{name}" if name and ctype else None


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One validated, compiled rule."""

    id: str
    config: RuleConfig
    compiled: CompiledRule
    action_ids: tuple[str, ...]


@dataclass(slots=True)
class AppConfig:
    """A whole validated configuration."""

    raw: RawConfig
    connectors: dict[str, ComponentSpec] = field(default_factory=dict)
    actions: dict[str, ComponentSpec] = field(default_factory=dict)
    sources: dict[str, ComponentSpec] = field(default_factory=dict)
    rules: dict[str, RuleSpec] = field(default_factory=dict)


def pydantic_problems(exc: ValidationError, prefix: str,
                      model: type[BaseModel] | None = None) -> list[tuple[str, str]]:
    """Turn pydantic's errors into ``(dotted.path, message)`` pairs, never echoing input.

    Args:
        exc: the error of a validation.
        prefix: the dotted path of what was validated.
        model: the model validated: an unknown key is then told the closest known one
            (``unknown field (did you mean 'bootstrap_hosts'?)``).
    """
    out = []
    for err in exc.errors(include_input=False, include_url=False):
        parts = [prefix] if prefix else []
        for loc in err["loc"]:
            if isinstance(loc, int):
                if parts:
                    parts[-1] += f"[{loc}]"
                else:
                    parts.append(f"[{loc}]")
            else:
                parts.append(str(loc))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
            if model is not None and err["loc"]:
                msg += did_you_mean(str(err["loc"][-1]), known_fields(model, err["loc"]))
        msg = msg.removeprefix("Value error, ")
        out.append((".".join(parts), msg))
    return out


def validate_config(
    data: Mapping[str, Any],
    registries: Registries,
    functions: FunctionTable | None = None,
) -> AppConfig:
    """Validate a config mapping against the registered types and compile every rule.

    Raises:
        ConfigError: with every problem found.
    """
    v = _Validator(registries, functions)
    app = AppConfig(v.raw(data))
    v.mistyped_sections(data)
    for kind in ("connectors", "actions", "sources"):
        v.components(kind, getattr(app.raw, kind), getattr(app, kind))
    for kind, specs in (("actions", app.actions), ("sources", app.sources)):
        for spec in specs.values():
            _check_connector(kind, spec, app, v)
    for rule_id, rule in app.raw.rules.items():
        v.rule(app, rule_id, rule)
    dead_letter = app.raw.mqtt.dead_letter
    if (dead_letter is not None and dead_letter.action not in app.actions
            and not v.is_invalid("actions", dead_letter.action)):
        v.problems.append(("mqtt.dead_letter.action", f"unknown action {dead_letter.action!r}"
                           f"{did_you_mean(dead_letter.action, app.actions)}"))
    if v.problems:
        raise ConfigError(v.problems)
    return app


def validate_rule(
    config: AppConfig,
    rule_id: str,
    body: Mapping[str, Any],
    registries: Registries,
    functions: FunctionTable | None = None,
) -> RuleSpec:
    """Validate and compile one rule against an already validated configuration.

    The rule is checked exactly as :func:`validate_config` checks it within a whole file (its SQL,
    the actions it names, the sources it selects), without looking at any other rule, so its cost
    does not grow with the number of rules. ``config`` is not changed.

    Raises:
        ConfigError: with every problem, as ``rules.<id>.<field>: message``.
    """
    v = _Validator(registries, functions)
    try:
        rule = RuleConfig.model_validate(body)
    except ValidationError as exc:
        raise ConfigError(pydantic_problems(exc, f"rules.{rule_id}", RuleConfig)) from None
    # Inline actions are added to the actions of the scratch copy, never to ``config``'s.
    scratch = AppConfig(config.raw, config.connectors, dict(config.actions), config.sources)
    v.rule(scratch, rule_id, rule)
    if v.problems:
        raise ConfigError(v.problems)
    return scratch.rules[rule_id]


class _Validator:
    """Collects every problem while validating, so all are reported at once."""

    def __init__(self, registries: Registries, functions: FunctionTable | None) -> None:
        self.registries = registries
        self.functions = functions
        self.problems: list[tuple[str, str]] = []
        #: ``<kind>/<id>`` of the components that are in the file but invalid: their own problems
        #: are reported, and what refers to them is not told again that they do not exist.
        self.invalid: set[str] = set()

    def is_invalid(self, kind: str, cid: str) -> bool:
        """Whether ``cid`` is in the file but invalid, or its name is under a mistyped type."""
        name = cid.partition(":")[2]
        return f"{kind}/{cid}" in self.invalid or any(
            i.startswith(f"{kind}/") and i.partition(":")[2] == name
            and i.partition("/")[2].partition(":")[0] not in self.types(kind)
            for i in self.invalid)

    def types(self, kind: str) -> list[str]:
        """The registered type names of ``kind``."""
        return list(getattr(self.registries, kind).names())

    def mistyped_sections(self, data: Mapping[str, Any]) -> None:
        """Mark the components of a mistyped section (``conectors``) as invalid: the section is
        reported as an unknown field, and what refers to its entries is not told again."""
        for key, section in data.items():
            if key in RawConfig.model_fields or not isinstance(section, Mapping):
                continue
            close = get_close_matches(str(key), ["connectors", "actions", "sources"], n=1)
            for type_name, entries in section.items() if close else ():
                for name in entries if isinstance(entries, Mapping) else ():
                    self.invalid.add(f"{close[0]}/{type_name}:{name}")

    def raw(self, data: Mapping[str, Any]) -> RawConfig:
        try:
            return RawConfig.model_validate(data)
        except ValidationError as exc:
            found = pydantic_problems(exc, "", RawConfig)
            self.problems.extend(found)
        # Go on with the sections that parsed, to list every problem in one go.
        bad = {p.split(".")[0].split("[")[0] for p, _ in found}
        return RawConfig.model_validate(
            {k: v for k, v in data.items() if k in RawConfig.model_fields and k not in bad})

    def components(self, kind: str, entries_by_type: Mapping[str, Any],
                   target: dict[str, ComponentSpec]) -> None:
        for type_name, entries in entries_by_type.items():
            if not isinstance(entries, dict):
                self.problems.append((f"{kind}.{type_name}",
                                      "expected a mapping of names to settings"))
                continue
            for name, body in entries.items():
                spec = self.component(kind, type_name, str(name), body)
                if spec is not None:
                    target[spec.id] = spec

    def component(self, kind: str, type_name: str, name: str, body: Any,
                  path: str | None = None) -> ComponentSpec | None:
        reg = getattr(self.registries, kind)
        path = path or f"{kind}.{type_name}.{name}"
        if not _NAME.match(name):
            self.problems.append((path, "invalid name: use letters, digits, '_', '-' and '.'"))
            self.invalid.add(f"{kind}/{type_name}:{name}")
            return None
        typ = reg.get(type_name)
        if typ is None:
            self.invalid.add(f"{kind}/{type_name}:{name}")
            problem = (f"{kind}.{type_name}", _unknown_type(reg, type_name))
            if problem not in self.problems:  # once for all the entries of the type
                self.problems.append(problem)
            return None
        try:
            model: BaseModel = typ.config_model.model_validate(body or {})
        except ValidationError as exc:
            self.problems.extend(pydantic_problems(exc, path, typ.config_model))
            self.invalid.add(f"{kind}/{type_name}:{name}")
            return None
        return ComponentSpec(f"{type_name}:{name}", typ, name, model)

    def rule(self, app: AppConfig, rule_id: str, rule: RuleConfig) -> None:
        from mqferry._rules import RuleError, compile_sql

        path = f"rules.{rule_id}"
        try:
            compiled = compile_sql(rule.sql, self.functions)
        except RuleError as exc:
            self.problems.append((f"{path}.sql", str(exc)))
            return
        action_ids = []
        for i, ref in enumerate(rule.actions):
            apath = f"{path}.actions[{i}]"
            if isinstance(ref, InlineAction):
                spec = self.component("actions", ref.function, f"{rule_id}.{i}",
                                      {"parameters": ref.args}, path=apath)
                if spec is not None:
                    _check_connector("actions", spec, app, self)
                    app.actions[spec.id] = spec
                    action_ids.append(spec.id)
            elif self.is_invalid("actions", ref):
                pass  # the action's own problems are reported
            elif ref not in app.actions:
                hint = (did_you_mean(ref, app.actions) if ":" in ref
                        else " (write it as <type>:<name>)")
                self.problems.append((apath, f"unknown action {ref!r}{hint}"))
            else:
                action_ids.append(ref)
        for src in compiled.event_topics:
            _check_event_source(f"{path}.sql", src, app, self)
        app.rules[rule_id] = RuleSpec(rule_id, rule, compiled, tuple(action_ids))


def _unknown_type(reg: Any, type_name: str) -> str:
    names = list(reg.names())
    hint = did_you_mean(type_name, names)
    return f"unknown {reg.kind} type {type_name!r}{hint} (known: {', '.join(names) or 'none'})"


def _check_connector(kind: str, spec: ComponentSpec, app: AppConfig, v: _Validator) -> None:
    problems = v.problems
    ctype = getattr(spec.type, "connector_type", None)
    name = getattr(spec.config, "connector", None)
    path = f"{kind}.{spec.type.name}.{spec.name}.connector"
    if ctype is None:
        return
    if not name:
        if not getattr(spec.type, "connector_optional", False):
            problems.append((path, f"required: the name of a {ctype} connector"))
    elif v.is_invalid("connectors", f"{ctype}:{name}"):
        pass  # the connector's own problems are reported
    elif f"{ctype}:{name}" not in app.connectors:
        problems.append((path, f"no {ctype} connector named {name!r}"))


def _check_event_source(path: str, src: str, app: AppConfig, v: _Validator) -> None:
    sid = source_id(src)
    if sid is not None and sid not in app.sources and not v.is_invalid("sources", sid):
        v.problems.append((path, f"FROM {src!r}: no source {sid!r} is configured"))


def load_config(
    path: str | Path,
    registries: Registries,
    functions: FunctionTable | None = None,
) -> AppConfig:
    """Read and validate a config file.

    Raises:
        ConfigError: with every problem found.
    """
    return validate_file_data(read_yaml(path, env=False), registries, functions)


def validate_file_data(
    data: Mapping[str, Any],
    registries: Registries,
    functions: FunctionTable | None = None,
) -> AppConfig:
    """Expand the ``${NAME}`` references of a file's mapping and validate it.

    An unset variable is reported with every other problem of the file; the problems of a value
    that uses one are not (it is left as written, which its field would refuse).

    Raises:
        ConfigError: with every problem found.
    """
    expanded, unset = expand_partly(data)
    try:
        config = validate_config(expanded, registries, functions)
    except ConfigError as exc:
        paths = {p for p, _ in unset}
        others = [(p, m) for p, m in exc.problems if not _within(p, paths)]
        raise ConfigError([*unset, *others]) from None
    if unset:
        raise ConfigError(unset)
    return config


def _within(path: str, paths: set[str]) -> bool:
    return any(path == p or path.startswith((f"{p}.", f"{p}[")) for p in paths)

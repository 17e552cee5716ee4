"""The configuration of a running app: reload from the file, change through the API."""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mqferry._config.env import expand, keep_references
from mqferry._config.loader import (
    AppConfig,
    RuleSpec,
    validate_file_data,
    validate_rule,
)
from mqferry._config.persist import ConfigWriter, digest_of
from mqferry._config.settle import read_settled
from mqferry._config.yamlfile import parse_yaml, read_yaml
from mqferry._errors import ConfigError, MqferryError
from mqferry._runtime.reconfig.apply import apply_rule

if TYPE_CHECKING:
    from mqferry._cluster.config_sync import SharedConfig
    from mqferry._plugins import PluginSet
    from mqferry._registry import Registries
    from mqferry._rules import FunctionTable
    from mqferry._runtime.app import App
    from mqferry._runtime.reconfig.plan import Plan

log = logging.getLogger(__name__)

__all__ = ["ConfigConflictError", "Controller"]


class ConfigConflictError(MqferryError):
    """The config file changed on disk since it was loaded; a write-back would lose that edit."""


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
    written back by a :class:`~mqferry._config.persist.ConfigWriter`: after the change is applied,
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
        #: In a cluster: changes are written to the cluster's log and applied from there
        #: (set by :meth:`SharedConfig.attach`).
        self.cluster: SharedConfig | None = None
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
        return validate_file_data(data, self.registries(), self.function_table())

    async def reload(self) -> Plan:
        """Read the config file again, once it stopped changing, and apply it.

        A file caught in the middle of a save is read again until two reads
        :data:`~mqferry._config.settle.SETTLE_S` apart agree (:func:`read_settled`).

        Raises:
            ConfigError: the file is invalid, or kept changing; nothing was applied.
            ConfigConflictError: changes made through the API could not be written to the
                file yet; nothing was applied.
        """
        if self.path is None:
            raise MqferryError("this instance was not started from a config file")
        path = self.path
        async with self._lock:
            try:
                await self.flush()  # what the API changed is in the file before it is read back
            except OSError as exc:
                # Reading the file back now would undo changes the API has confirmed.
                raise ConfigConflictError(
                    f"the changes made through the API are not written to {path} yet "
                    f"({exc.strerror or exc}); reloading now would undo them. Make the file "
                    "writable (free disk space, permissions); the write is retried, then "
                    "reload") from exc

            def read() -> tuple[dict[str, Any], str | None, AppConfig]:
                # Waits until the file stops changing: an editor may be half-way through a save.
                raw = read_settled(path)
                try:
                    text = raw.decode()
                except UnicodeDecodeError as exc:
                    raise ConfigError([("", f"{path}: not UTF-8 text ({exc.reason})")]) from None
                data = parse_yaml(text, path, env=False)
                # the digest of the bytes applied, not of a later read: a save after this one
                # must still count as an edit
                return data, digest_of(raw), self.validate(data)

            data, digest, config = await asyncio.to_thread(read)
            if self.cluster is not None:
                if self._writer is not None:
                    self._writer.loaded(digest)
                return await self.cluster.propose(data, config, self.cluster.applied)
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
            base = self.cluster.applied if self.cluster is not None else 0

            def prepare() -> tuple[dict[str, Any], AppConfig]:
                data = copy.deepcopy(current)
                mutate(data)
                # What a client sent: the file's ${NAME} text back where it echoed the value.
                data = keep_references(data, current)
                _share_unchanged(current, data)
                return data, self.validate(data)

            data, config = await asyncio.to_thread(prepare)
            if self.cluster is not None:
                return await self.cluster.propose(data, config, base)
            plan = await self.app.reconfigure(config)
            old, self.data = self.data, data
            self._touch_changed(old)
            self._persist()
            return plan

    async def adopt(self, data: dict[str, Any], config: AppConfig | None) -> Plan:
        """Run the configuration ``data`` (a version of the cluster's), as a local change would.

        Only what changed restarts; a change of one rule alone takes the rule path (see
        :meth:`change_rule`). The file is written back, so it follows the cluster.

        Args:
            data: the whole configuration mapping.
            config: its validated form (validated here when ``None``).

        Raises:
            ConfigError: ``data`` is not valid on this node; nothing was applied.
        """
        if config is None:
            config = await asyncio.to_thread(self.validate, data)
        old = self.data
        ids = [i for i in set(self._ids(old)) | set(self._ids(data))
               if self._ids(old).get(i) != self._ids(data).get(i)]
        rest = {k: v for k, v in old.items() if k != "rules"}
        rest_new = {k: v for k, v in data.items() if k != "rules"}
        rule_id = ids[0].removeprefix("rules/") if len(ids) == 1 else None
        if (rule_id is not None and ids[0].startswith("rules/") and rest == rest_new
                and not _has_inline((old.get("rules") or {}).get(rule_id))
                and not _has_inline((data.get("rules") or {}).get(rule_id))):
            spec = config.rules.get(rule_id)
            plan = await apply_rule(self.app, rule_id, spec,
                                    _with_rule(self.app.config, rule_id, spec))
        else:
            plan = await self.app.reconfigure(config)
        self.data = data
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
            if _has_inline(old) or _has_inline(body) or self.cluster is not None:
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
        base = self.cluster.applied if self.cluster is not None else 0

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
        if self.cluster is not None:
            return await self.cluster.propose(data, config, base)
        plan = await self.app.reconfigure(config)
        old, self.data = self.data, data
        self._touch_changed(old)
        self._persist()
        return plan

    @property
    def write_error(self) -> str | None:
        """Why the last write-back of the file failed (``None``: it did not, or no file)."""
        return self._writer.last_error if self._writer is not None else None

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

    def persist(self) -> None:
        """Write the running configuration back to the file soon (no-op without a file)."""
        self._persist()

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

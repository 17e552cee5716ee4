"""The plugin manager: entry-point discovery with isolated failures, and a typed hook facade.

Nothing here runs at import time; :func:`load_plugins` builds a fresh manager every time, so tests
and embedding applications never share global plugin state.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from mqferry import _hookspecs as hookspecs
from mqferry._errors import MqferryError, PluginError
from mqferry._registry import Registries

if TYPE_CHECKING:
    import click

    from mqferry._cluster.transport import ClusterTransport
    from mqferry._config import ClusterConfig
    from mqferry._rules import FunctionTable

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "mqferry"
DISABLE_ENV = "MQFERRY_DISABLE_PLUGINS"

#: Built-in plugins the core expects; a missing one is warned about (a broken install).
EXPECTED_BUILTINS = ("mqtt", "functions", "kafka_producer", "kafka_consumer", "republish", "bench",
                     "cluster")

@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What ``mqferry plugins`` shows about one plugin."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]


@dataclass(slots=True)
class PluginSet:
    """The loaded plugins of one application.

    Attributes:
        manager: the pluggy manager holding them.
        failed: plugins that could not be imported, by name, with the error text.
        disabled: plugins blocked by ``MQFERRY_DISABLE_PLUGINS``.
    """

    manager: pluggy.PluginManager
    failed: dict[str, str] = field(default_factory=dict)
    disabled: list[str] = field(default_factory=list)
    _dists: dict[str, tuple[str, str]] = field(default_factory=dict)

    def infos(self) -> list[PluginInfo]:
        """Every loaded plugin with its distribution, version and the hooks it implements."""
        out = []
        for name, plugin in self.manager.list_name_plugin():
            if plugin is None:
                continue
            hooks = tuple(
                sorted(h.name for h in self.manager.get_hookcallers(plugin) or [])
            )
            dist, version = self._dists.get(name, ("", ""))
            out.append(PluginInfo(name, dist, version, hooks))
        return sorted(out, key=lambda i: i.name)

    def registries(self) -> Registries:
        """Fill fresh type registries from every plugin's registration hooks.

        Raises:
            DuplicateTypeError: two plugins registered the same type name.
        """
        regs = Registries.empty()
        self._call_each("mqferry_register_connector_types", regs.connectors.for_plugin)
        self._call_each("mqferry_register_action_types", regs.actions.for_plugin)
        self._call_each("mqferry_register_source_types", regs.sources.for_plugin)
        return regs

    def function_table(self) -> FunctionTable:
        """The rule SQL functions every plugin registered (the built-in catalogue included)."""
        from mqferry._rules import FunctionTable

        table = FunctionTable()
        self._call_each("mqferry_register_functions", lambda p: _FunctionRegister(table, p))
        return table

    def add_commands(self, cli: click.Group) -> None:
        """Let plugins add CLI commands."""
        self.manager.hook.mqferry_register_commands(cli=cli)

    def cluster_transport(self, config: ClusterConfig, node: str) -> ClusterTransport:
        """The transport of the ``cluster`` section, from the first plugin that provides one.

        Raises:
            ConfigError: no plugin provides one, or the section's transport fields are invalid.
        """
        from mqferry._errors import ConfigError

        try:
            transport = self.manager.hook.mqferry_cluster_transport(config=config, node=node)
        except MqferryError:
            raise
        except Exception as exc:
            raise PluginError(f"mqferry_cluster_transport failed: {type(exc).__name__}: {exc}",
                              component="cluster") from exc
        if transport is None:
            raise ConfigError([("cluster", "no installed plugin provides a cluster transport "
                                "(the mqferry_cluster plugin does: is it disabled?)")])
        return transport  # type: ignore[no-any-return]

    def _call_each(self, hook_name: str, make_register: Callable[[str], object]) -> None:
        # Each implementation gets a register that knows which plugin it speaks for, so a
        # duplicate can name both plugins: the hook is called once per plugin, through pluggy's
        # caller restricted to that plugin (tracing and wrappers still apply).
        caller = getattr(self.manager.hook, hook_name)
        impls = list(reversed(caller.get_hookimpls()))
        for impl in impls:
            others = [i.plugin for i in impls if i.plugin is not impl.plugin]
            only = self.manager.subset_hook_caller(hook_name, remove_plugins=others)
            try:
                only(register=make_register(impl.plugin_name))
            except MqferryError:
                raise
            except Exception as exc:
                raise PluginError(f"plugin {impl.plugin_name!r}: {hook_name} failed: "
                                  f"{type(exc).__name__}: {exc}",
                                  component=impl.plugin_name) from exc


class _FunctionRegister:
    def __init__(self, table: FunctionTable, plugin: str) -> None:
        self._table = table
        self._plugin = plugin

    def add(
        self,
        name: str,
        func: Any,
        *,
        min_args: int | None = None,
        max_args: int | None = None,
    ) -> None:
        self._table.add(name, func, min_args=min_args, max_args=max_args, plugin=self._plugin)


def disabled_names(env: dict[str, str] | None = None) -> set[str]:
    """Plugin names listed in ``MQFERRY_DISABLE_PLUGINS`` (comma-separated)."""
    raw = (env if env is not None else os.environ).get(DISABLE_ENV, "")
    return {n.strip() for n in raw.split(",") if n.strip()}


def load_plugins(
    *,
    entry_points_: Iterable[EntryPoint] | None = None,
    extra: Iterable[tuple[str, ModuleType | object]] = (),
    env: dict[str, str] | None = None,
    warn_missing_builtins: bool = True,
) -> PluginSet:
    """Build a plugin manager and load every plugin of the ``mqferry`` entry-point group.

    A plugin that fails to import is logged and listed in :attr:`PluginSet.failed`; the others
    still load.

    Args:
        entry_points_: the entry points to load (default: the installed ones).
        extra: ``(name, plugin)`` pairs to register directly (tests, embedding).
        env: the environment to read ``MQFERRY_DISABLE_PLUGINS`` from (default ``os.environ``).
        warn_missing_builtins: log a warning when an expected built-in plugin is absent.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = disabled_names(env)
    result = PluginSet(pm)
    eps = list(entry_points(group=ENTRY_POINT_GROUP) if entry_points_ is None else entry_points_)
    for ep in eps:
        if ep.name in blocked:
            pm.set_blocked(ep.name)
            result.disabled.append(ep.name)
            continue
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # any import failure isolates that plugin only
            result.failed[ep.name] = f"{type(exc).__name__}: {exc}"
            log.error("plugin %r (%s) failed to load: %s: %s", ep.name, ep.value,
                      type(exc).__name__, exc)
            continue
        try:
            pm.register(plugin, name=ep.name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            result.failed[ep.name] = str(exc)
            log.error("plugin %r was refused: %s", ep.name, exc)
            continue
        dist = ep.dist
        result._dists[ep.name] = (dist.name, dist.version) if dist else ("", "")
    for name, plugin in extra:
        if name in blocked:
            result.disabled.append(name)
            continue
        pm.register(plugin, name=name)
        result._dists[name] = ("", "")
    if warn_missing_builtins:
        present = {n for n, _ in pm.list_name_plugin()}
        for name in EXPECTED_BUILTINS:
            if name not in present and name not in blocked and name not in result.failed:
                log.warning("built-in plugin %r is missing: is mqferry installed correctly?", name)
    return result


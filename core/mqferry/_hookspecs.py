"""Every hook a mqferry plugin can implement.

Plugins are found through the ``mqferry`` entry-point group. A plugin module implements any of the
hooks below, decorated with :data:`hookimpl`. Registration hooks receive a *registry* object and
call ``register.add(...)``; the registry refuses a name that another plugin already took and names
both plugins. Hooks are synchronous: async work lives in the objects they register.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from mqferry._cluster.transport import ClusterTransport
    from mqferry._config import ClusterConfig
    from mqferry._registry import (
        ActionRegister,
        ConnectorRegister,
        FunctionRegister,
        SourceRegister,
    )

PROJECT = "mqferry"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorate a plugin's hook functions with this.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def mqferry_register_connector_types(register: ConnectorRegister) -> None:
    """Register connector types (a named connection to an external system).

    Fires once, when the application is built, before the configuration is validated.

    Args:
        register: call ``register.add(ConnectorType(...))`` for each type.

    Returns:
        Nothing; the registry keeps what was added.
    """


@hookspec
def mqferry_register_action_types(register: ActionRegister) -> None:
    """Register action (sink) types that rules send their outputs to.

    Fires once, when the application is built, before the configuration is validated.

    Args:
        register: call ``register.add(ActionType(...))`` for each type.

    Returns:
        Nothing; the registry keeps what was added.
    """


@hookspec
def mqferry_register_source_types(register: SourceRegister) -> None:
    """Register source types that produce events for rules or publish to MQTT.

    Fires once, when the application is built, before the configuration is validated.

    Args:
        register: call ``register.add(SourceType(...))`` for each type.

    Returns:
        Nothing; the registry keeps what was added.
    """


@hookspec
def mqferry_register_functions(register: FunctionRegister) -> None:
    """Register functions callable from rule SQL.

    Fires once, when the function table is built, before any rule is compiled. The built-in
    catalogue registers through this hook too.

    Args:
        register: call ``register.add(name, func, min_args=..., max_args=...)``; the arity is
            taken from the signature when not given.

    Returns:
        Nothing; the registry keeps what was added.
    """


@hookspec
def mqferry_register_commands(cli: click.Group) -> None:
    """Add commands to the ``mqferry`` command line.

    Fires once, when the CLI is built, before arguments are parsed.

    Args:
        cli: the top-level click group; call ``cli.add_command(...)``.

    Returns:
        Nothing.
    """


@hookspec(firstresult=True)
def mqferry_cluster_transport(config: ClusterConfig, node: str) -> ClusterTransport | None:
    """Provide the transport of a cluster: its shared logs and its session-slot membership.

    Fires once at start-up when the configuration has a ``cluster`` section; the first plugin
    that returns a transport is used (``mqferry_cluster`` ships one on Kafka). It validates the
    section's transport fields (``config.transport_options()``) and raises
    :class:`~mqferry.ConfigError` naming what is wrong.

    Args:
        config: the ``cluster`` section.
        node: this node's name (the config's ``node``).

    Returns:
        The transport, not started; ``None`` when this plugin does not provide one.
    """

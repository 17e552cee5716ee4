"""The ``mqferry`` command line. Plugins add commands through ``mqferry_register_commands``."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import click

from mqferry._errors import ConfigError, MqferryError
from mqferry._logs import setup_logging
from mqferry._plugins import PluginSet, load_plugins
from mqferry._types import HealthStatus, Status
from mqferry._version import __version__


def _plugins(ctx: click.Context) -> PluginSet:
    obj = ctx.ensure_object(dict)
    if "plugins" not in obj:
        obj["plugins"] = load_plugins()
    plugins: PluginSet = obj["plugins"]
    return plugins


def _config_error(exc: ConfigError, path: str) -> click.ClickException:
    count = len(exc.problems)
    lines = [f"{path}: invalid configuration ({count} problem{'' if count == 1 else 's'}):"]
    lines += [f"  {p}: {m}" if p else f"  {m}" for p, m in exc.problems]
    return click.ClickException("\n".join(lines))


def _runner(name: str) -> Callable[[Coroutine[Any, Any, None]], None]:
    """``asyncio.run`` or ``uvloop.run``, as ``--loop`` asks; logs which one runs."""
    log = logging.getLogger("mqferry")
    if name == "uvloop":
        try:
            import uvloop  # type: ignore[import-not-found,unused-ignore]
        except ImportError:
            raise click.ClickException(
                "--loop uvloop: uvloop is not installed (pip install uvloop)") from None
        from importlib.metadata import version

        log.info("event loop: uvloop %s", version("uvloop"))
        run: Callable[[Coroutine[Any, Any, None]], None] = uvloop.run
        return run
    log.info("event loop: asyncio")
    return asyncio.run


@click.command()
@click.option("-c", "--config", "config_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="YAML config file.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default=None, help="Overrides the config's log.level.")
@click.option("--loop", "loop_name", type=click.Choice(["asyncio", "uvloop"]),
              default="asyncio", envvar="MQFERRY_LOOP", show_default=True, show_envvar=True,
              help="Event loop: asyncio (the standard library's) or uvloop (libuv; "
                   "pip install uvloop). Measured equal at full load, asyncio lighter at low "
                   "rates and in memory (benchmarks/RESULTS.md).")
@click.pass_context
def run(ctx: click.Context, config_path: Path, log_level: str | None, loop_name: str) -> None:
    """Run mqferry with a config file until SIGINT or SIGTERM."""
    from mqferry._config.loader import load_config
    from mqferry._runtime import App, run_app

    plugins = _plugins(ctx)
    try:
        config = load_config(config_path, plugins.registries(), plugins.function_table())
    except ConfigError as exc:
        raise _config_error(exc, str(config_path)) from None
    except MqferryError as exc:
        raise click.ClickException(str(exc)) from None
    log_cfg = config.raw.log
    setup_logging(log_level or log_cfg.level, log_cfg.format, log_cfg.levels)
    for name, err in plugins.failed.items():
        logging.getLogger("mqferry").error("plugin %s not loaded: %s", name, err)
    runner = _runner(loop_name)
    from mqferry._runtime.reconfig import Controller

    if config.raw.cluster is not None:
        from mqferry._runtime.run import run_cluster

        try:
            runner(run_cluster(config, plugins, config_path))
        except ConfigError as exc:
            raise _config_error(exc, str(config_path)) from None
        except MqferryError as exc:  # e.g. a configuration the cluster never had
            raise click.ClickException(str(exc)) from None
        return
    app = App(config)
    try:
        runner(run_app(app, controller=Controller(app, plugins, path=config_path)))
    except MqferryError as exc:  # a disk buffer another instance holds, say
        raise click.ClickException(str(exc)) from None


@click.group()
def config() -> None:
    """Work with config files."""


@config.command("validate")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def config_validate(ctx: click.Context, path: Path) -> None:
    """Check a config file; print every problem as `path.to.field: message`."""
    from mqferry._config.loader import load_config

    plugins = _plugins(ctx)
    try:
        cfg = load_config(path, plugins.registries(), plugins.function_table())
    except ConfigError as exc:
        for p, m in exc.problems:
            click.echo(f"{p}: {m}" if p else m, err=True)
        ctx.exit(1)
    except MqferryError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{path}: valid ({len(cfg.connectors)} connectors, {len(cfg.actions)} actions, "
        f"{len(cfg.sources)} sources, {len(cfg.rules)} rules)"
    )


@click.command("plugins")
@click.pass_context
def plugins_cmd(ctx: click.Context) -> None:
    """List the installed plugins: name, distribution, version and hooks implemented."""
    plugins = _plugins(ctx)
    infos = plugins.infos()
    width = max([len(i.name) for i in infos] + [6])
    click.echo(f"{'PLUGIN':<{width}}  {'DISTRIBUTION':<24}  {'VERSION':<10}  HOOKS")
    for info in infos:
        hooks = ", ".join(h.removeprefix("mqferry_") for h in info.hooks) or "-"
        click.echo(f"{info.name:<{width}}  {info.distribution or '-':<24}  "
                   f"{info.version or '-':<10}  {hooks}")
    for name, err in sorted(plugins.failed.items()):
        click.echo(f"{name:<{width}}  FAILED TO LOAD: {err}")
    for name in sorted(plugins.disabled):
        click.echo(f"{name:<{width}}  disabled by MQFERRY_DISABLE_PLUGINS")


@click.group()
def connectors() -> None:
    """Work with connectors."""


@connectors.command("probe")
@click.option("-c", "--config", "config_path", required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="YAML config file.")
@click.argument("ids", nargs=-1)
@click.pass_context
def connectors_probe(ctx: click.Context, config_path: Path, ids: tuple[str, ...]) -> None:
    """Test the connection of connectors in a config file ("test connection").

    IDS are `<type>:<name>` (default: every connector, and `mqtt` for the MQTT broker). Exits 1
    if any cannot connect.
    """
    from mqferry._config.loader import load_config
    from mqferry._mqtt.client import probe as probe_mqtt

    plugins = _plugins(ctx)
    try:
        cfg = load_config(config_path, plugins.registries(), plugins.function_table())
    except ConfigError as exc:
        raise _config_error(exc, str(config_path)) from None
    wanted = list(ids) or ["mqtt", *cfg.connectors]
    unknown = [i for i in wanted if i != "mqtt" and i not in cfg.connectors]
    if unknown:
        known = ", ".join(["mqtt", *cfg.connectors])
        raise click.ClickException(f"no connector {', '.join(unknown)} in {config_path} "
                                   f"(known: {known})")

    async def probe_all() -> list[tuple[str, HealthStatus]]:
        out = []
        for cid in wanted:
            if cid == "mqtt":
                out.append((cid, await probe_mqtt(cfg.raw.mqtt)))
                continue
            spec = cfg.connectors[cid]
            probe = getattr(spec.type, "probe", None)
            if probe is None:
                out.append((cid, HealthStatus(Status.DISCONNECTED, "this type has no probe")))
            else:
                out.append((cid, await probe(spec.config)))
        return out

    results = asyncio.run(probe_all())
    for cid, health in results:
        reason = f": {health.reason}" if health.reason else ""
        click.echo(f"{cid}: {health.status}{reason}")
    if any(h.status is not Status.CONNECTED for _, h in results):
        ctx.exit(1)


def build_cli(plugins: PluginSet | None = None, *, client_commands: bool = True) -> click.Group:
    """The click group with built-in and plugin commands.

    Args:
        plugins: the plugins whose commands are added (loaded when not given).
        client_commands: add the commands of the REST API's client; ``mqferry run`` goes
            without them, as importing them loads FastAPI, uvicorn and httpx (about 16 MiB of
            resident memory) that a bridge without its API never uses.
    """
    from mqferry._rules.cli import rule

    @click.group(context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="mqferry")
    def cli() -> None:
        """Stream MQTT data into Apache Kafka and Kafka data back to MQTT, through SQL rules."""

    for command in (run, config, plugins_cmd, rule, connectors):
        cli.add_command(command)
    if client_commands:
        from mqferry._api.cli import register_commands

        register_commands(cli, config=config, connectors=connectors)
    (plugins or load_plugins()).add_commands(cli)
    return cli


def main() -> None:
    """Console entry point."""
    plugins = load_plugins()
    serving = sys.argv[1:2] == ["run"]
    build_cli(plugins, client_commands=not serving).main(obj={"plugins": plugins},
                                                         prog_name="mqferry")

"""Build an :class:`App` from a config file and run it until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from mqferry.config.loader import load_config
from mqferry.plugins import PluginSet, load_plugins
from mqferry.runtime.app import App

log = logging.getLogger(__name__)


def build_app(config_path: str | Path, plugins: PluginSet | None = None) -> App:
    """Load plugins, validate the config file against their types and build the app.

    Raises:
        ConfigError: the file is invalid; nothing was started.
        DuplicateTypeError: two plugins registered the same type.
    """
    plugins = plugins or load_plugins()
    config = load_config(config_path, plugins.registries(), plugins.function_table())
    return App(config)


async def run_app(app: App, *, stop: asyncio.Event | None = None) -> None:
    """Start ``app``, run until SIGINT/SIGTERM (or ``stop`` is set), then stop it gracefully."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await app.start()
        log.info("mqferry running: %d rules, %d actions, %d sources; subscriptions: %s",
                 len(app.rules), len(app.actions), len(app.sources),
                 ", ".join(sorted(app.topic_filters)) or "none")
        await stop.wait()
        log.info("stopping: flushing in-flight messages")
    finally:
        await app.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    log.info("stopped")

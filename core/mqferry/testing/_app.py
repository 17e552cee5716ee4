"""An app under test: built from a config dict, its MQTT connector an injected twin."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from mqferry._config import validate_config
from mqferry._plugins import PluginSet, load_plugins
from mqferry._rules.functions import FunctionTable
from mqferry._runtime import App
from mqferry._types import Action
from mqferry.testing._mqtt import MqttTwin


class AppHarness:
    """An :class:`~mqferry._runtime.App` and the :class:`MqttTwin` it talks to.

    ``async with`` starts the app (every component, then the MQTT session) and stops it.

    Attributes:
        app: the app.
        mqtt: its MQTT connector: deliver messages with ``mqtt.deliver(...)``, read what was
            published in ``mqtt.published`` and what was acknowledged in ``mqtt.acked``.
    """

    def __init__(self, app: App, mqtt: MqttTwin) -> None:
        self.app = app
        self.mqtt = mqtt

    def wire(self, rule_id: str, *actions: Action) -> None:
        """Make ``actions`` (twins such as :class:`~mqferry.testing.RecordingAction`) the
        actions of rule ``rule_id``, instead of those of the config."""
        self.app.rules[rule_id].actions = list(actions)

    async def start(self) -> None:
        """Start the app."""
        await self.app.start()

    async def stop(self) -> None:
        """Stop the app (idempotent)."""
        await self.app.stop()

    async def __aenter__(self) -> AppHarness:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()


def build_app(config: Mapping[str, Any], *, plugins: PluginSet | None = None,
              data_dir: Path | None = None,
              functions: FunctionTable | None = None) -> AppHarness:
    """An app built from ``config`` (the YAML file's content, as a dict), on an MQTT twin.

    Args:
        config: the configuration; validated as the service validates its file.
        plugins: the plugins it is validated and built with (the installed ones by default).
        data_dir: where its components keep files (the config's ``data_dir`` by default).
        functions: the rule functions (those of ``plugins`` by default), to add one for a test.

    Raises:
        ConfigError: the configuration is not valid (the message names what is wrong).
    """
    plugins = plugins if plugins is not None else load_plugins()
    cfg = validate_config(config, plugins.registries(),
                          functions if functions is not None else plugins.function_table())
    made: list[MqttTwin] = []
    app = App(cfg, data_dir=data_dir, mqtt_factory=MqttTwin.factory(made))
    return AppHarness(app, made[0])

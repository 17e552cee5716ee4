"""pytest fixtures for mqferry plugin authors (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from mqferry._plugins import PluginSet, load_plugins
from mqferry.testing import AppHarness, InMemoryMqtt, RecordingAction, build_app


@pytest.fixture
def mqferry_plugins() -> PluginSet:
    """The installed plugins, loaded into a fresh plugin manager."""
    return load_plugins()


@pytest.fixture
def mqferry_app(mqferry_plugins: PluginSet,
                tmp_path: Path) -> Callable[[Mapping[str, Any]], AppHarness]:
    """Builds an app from a config dict, on an MQTT twin, with its data in ``tmp_path``.

    ``async with mqferry_app({"rules": {...}}) as h:`` starts it; ``h.mqtt.deliver(...)``
    hands it a message; ``h.mqtt.published`` and ``h.mqtt.acked`` show what came out.
    """
    return partial(build_app, plugins=mqferry_plugins, data_dir=tmp_path)


@pytest.fixture
def in_memory_mqtt() -> InMemoryMqtt:
    """An MQTT publisher twin that records publishes."""
    return InMemoryMqtt()


@pytest.fixture
def recording_action() -> RecordingAction:
    """An action twin that records outputs and secures them at once."""
    return RecordingAction()

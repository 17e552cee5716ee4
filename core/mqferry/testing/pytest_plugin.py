"""pytest fixtures for mqferry plugin authors (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

import pytest

from mqferry.plugins import PluginSet, load_plugins
from mqferry.testing import InMemoryMqtt, RecordingAction


@pytest.fixture
def mqferry_plugins() -> PluginSet:
    """The installed plugins, loaded into a fresh plugin manager."""
    return load_plugins()


@pytest.fixture
def in_memory_mqtt() -> InMemoryMqtt:
    """An MQTT publisher twin that records publishes."""
    return InMemoryMqtt()


@pytest.fixture
def recording_action() -> RecordingAction:
    """An action twin that records outputs and secures them at once."""
    return RecordingAction()

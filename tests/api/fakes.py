"""A plugin of in-memory types for API and reconfiguration tests: a ``fake`` connector and a
``fake`` action bound to it, which record what they receive and what happened to them."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from mqferry import ActionType, ConnectorType, HealthStatus, Status, hookimpl
from mqferry._config import ActionConfigBase, ConnectorConfigBase, Secret, Strict
from mqferry._metrics import action_metrics
from mqferry._plugins import PluginSet, load_plugins


class FakeConnectorConfig(ConnectorConfigBase):
    url: str = "fake://"
    password: Secret | None = None


class FakeParameters(Strict):
    topic: str
    hold: bool = False
    #: on stop, keep what is held unsettled (a target that never came back)
    strand: bool = False


class FakeActionConfig(ActionConfigBase):
    parameters: FakeParameters
    tags: list[str] = Field(default_factory=list)


class FakeConnector:
    events: ClassVar[list[tuple[str, str]]] = []

    def __init__(self, name: str, config: FakeConnectorConfig) -> None:
        self.id = f"fake:{name}"
        self.config = config

    async def start(self) -> None:
        self.events.append(("start", self.id))

    async def stop(self) -> None:
        self.events.append(("stop", self.id))

    async def health(self) -> HealthStatus:
        if self.config.url.startswith("bad"):
            return HealthStatus(Status.DISCONNECTED, "cannot reach bad://")
        return HealthStatus(Status.CONNECTED)


class FakeAction:
    """Keeps outputs; with ``hold`` keeps them pending and secures them on stop (a flush)."""

    events: ClassVar[list[tuple[str, str]]] = []
    received: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []

    def __init__(self, name: str, config: FakeActionConfig, connector: FakeConnector) -> None:
        self.id = f"fake:{name}"
        self.topic = config.parameters.topic
        self.hold = config.parameters.hold
        self.connector = connector
        self.metrics = action_metrics(self.id)
        self.pending: list[Any] = []
        self.strand = config.parameters.strand
        self.metrics.gauge("queuing", lambda: len(self.pending))

    def submit(self, output: Mapping[str, Any], delivery: Any) -> None:
        self.metrics.inc("matched")
        self.received.append((self.id, self.topic, dict(output)))
        if self.hold:
            self.pending.append(delivery)
        else:
            self.metrics.inc("success")
            delivery.secured()

    def preview(self, output: Mapping[str, Any]) -> dict[str, Any]:
        if "boom" in output:  # a template that fails on this output
            raise TypeError(f"cannot render {output['boom']!r}")
        return {"topic": self.topic, "value": dict(output)}

    async def start(self) -> None:
        self.events.append(("start", self.id))

    async def stop(self) -> None:
        if self.strand:
            self.events.append(("stop", self.id))
            return
        pending, self.pending = self.pending, []
        for d in pending:
            self.metrics.inc("success")
            d.secured()
        self.events.append(("stop", self.id))

    async def health(self) -> HealthStatus:
        return HealthStatus(Status.CONNECTED)


class FakePlugin:
    @hookimpl
    def mqferry_register_connector_types(self, register: Any) -> None:
        register.add(ConnectorType("fake", FakeConnectorConfig,
                                   lambda name, cfg, ctx: FakeConnector(name, cfg)))

    @hookimpl
    def mqferry_register_action_types(self, register: Any) -> None:
        register.add(ActionType("fake", FakeActionConfig,
                                lambda name, cfg, conn, ctx: FakeAction(name, cfg, conn),
                                connector_type="fake"))


def fake_raise(kind: str) -> Any:
    """A rule function failing with whatever ``kind`` names, as a faulty plugin function may."""
    errors: dict[str, type[Exception]] = {"type": TypeError, "zero": ZeroDivisionError,
                                          "recursion": RecursionError}
    raise errors[kind](f"fake_raise({kind})")


def fake_sleep(seconds: float) -> float:
    """A rule function that takes ``seconds`` (a runaway evaluation)."""
    time.sleep(seconds)
    return seconds


class FakeFunctions:
    @hookimpl
    def mqferry_register_functions(self, register: Any) -> None:
        register.add("fake_raise", fake_raise)
        register.add("fake_sleep", fake_sleep)


def fake_plugins() -> PluginSet:
    """The installed plugins plus the fakes."""
    return load_plugins(extra=[("fake", FakePlugin()), ("fake_functions", FakeFunctions())])


def reset_fakes() -> None:
    FakeConnector.events.clear()
    FakeAction.events.clear()
    FakeAction.received.clear()

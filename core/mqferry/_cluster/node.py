"""One node of a cluster: the start-up sequence and the lifecycle of the cluster's parts.

Start-up (see :func:`mqferry._runtime.run.run_cluster`): start the transport, read the ``config``
log to its end and agree on the configuration (:meth:`ClusterNode.configure`) *before* the app is
built; then the app is built and started, and the parts (:data:`Part` classes) after it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from mqferry._cluster.config_sync import SharedConfig
from mqferry._cluster.keys import SharedKeyStore
from mqferry._cluster.shared import SharedLog
from mqferry._errors import MqferryError
from mqferry._tasks import Supervisor
from mqferry._types import HealthStatus, Status

if TYPE_CHECKING:
    from pathlib import Path

    from mqferry._cluster.transport import ClusterTransport
    from mqferry._config.models import ClusterConfig
    from mqferry._runtime.app import App
    from mqferry._runtime.reconfig import Controller

log = logging.getLogger(__name__)

__all__ = ["ClusterNode", "Part", "PartFactory"]


class Part(Protocol):
    """A piece of the cluster's work on this node (heartbeats, session slots, ...)."""

    async def start(self) -> None:
        """Start (after the app has started)."""
        ...

    async def stop(self) -> None:
        """Stop (before the app stops). Idempotent."""
        ...

    async def health(self) -> HealthStatus:
        """How it is doing."""
        ...

    def describe(self) -> dict[str, Any]:
        """What ``/status`` shows about it."""
        ...


class PartFactory(Protocol):
    """A part class: ``Part(app, transport, config)``."""

    def __call__(self, app: App, transport: ClusterTransport, config: ClusterConfig) -> Part:
        ...


class ClusterNode:
    """This node's membership of the cluster: its transport, shared configuration and parts.

    Args:
        config: the ``cluster`` section.
        node: this node's name.
        transport: the cluster transport (from ``PluginSet.cluster_transport``).
    """

    def __init__(self, config: ClusterConfig, node: str, transport: ClusterTransport) -> None:
        self.config = config
        self.node = node
        self.transport = transport
        self.log = SharedLog(transport.log("config"), node=node,
                             write_timeout=config.node_timeout)
        self.shared_config = SharedConfig(self.log, cluster=config.name,
                                          timeout=config.node_timeout)
        #: The cluster's parts on this node, in start order.
        self.parts: list[Part] = []
        self._running: list[Part] = []
        self.app: App | None = None
        self.keys: SharedKeyStore | None = None
        #: Started when the log cannot be read at start: converges once it can.
        self.converger = Supervisor(f"mqferry[cluster:{config.name}].converge",
                                    self.shared_config.converge)
        self._started = False

    async def start(self) -> None:
        """Start the transport and read the shared log (the app is not built yet)."""
        await self.transport.start()
        self._started = True
        self.log.start()

    async def configure(self, file_data: dict[str, Any]) -> dict[str, Any]:
        """The configuration to build the app from: the cluster's (an empty one is seeded).

        The log is read to its end, waiting at most ``node_timeout``. When it cannot be read,
        the file's configuration is returned, ``/status`` says why, and :meth:`attach` keeps
        trying in the background.

        Raises:
            ClusterConfigError: the file is a configuration the cluster never had.
        """
        try:
            await self.log.caught_up(self.config.node_timeout)
        except MqferryError as exc:
            self.shared_config.note = (
                f"the cluster's configuration log cannot be read ({exc}); running this file's "
                "configuration until it can")
            log.warning("cluster %s: %s", self.config.name, self.shared_config.note)
            self.converger.start()
            return file_data
        return await self.shared_config.settle(file_data)

    def attach(self, app: App, controller: Controller,
               parts: Sequence[PartFactory] = ()) -> None:
        """Join the built app: ``app.cluster`` is this node, its changes go through the log.

        The parts are built here (``Part(app, transport, config)``), started by
        :meth:`start_parts` once the app runs.
        """
        self.app = app
        app.cluster = self
        self.shared_config.attach(controller)
        self.parts = [cls(app, self.transport, self.config) for cls in parts]

    async def claim(self) -> None:
        """Before the app starts: each part with a ``claim()`` checks this node may run.

        Raises:
            MqferryError: a part refuses (e.g. a live node already uses this node's name).
        """
        for part in self.parts:
            claim = getattr(part, "claim", None)
            if claim is not None:
                await claim()

    def key_store(self, path: str | Path) -> SharedKeyStore:
        """The cluster's API keys, this node's key file at ``path`` following them."""
        if self.keys is None:
            self.keys = SharedKeyStore(path, self.log, cluster=self.config.name)
            self.keys.start()
        return self.keys

    async def start_parts(self) -> None:
        """Start each part, in order (the app is running)."""
        for part in self.parts:
            if part not in self._running:
                await part.start()
                self._running.append(part)

    async def stop_parts(self) -> None:
        """Stop the started parts, last started first (idempotent)."""
        while self._running:
            part = self._running.pop()
            try:
                await part.stop()
            except Exception:
                log.exception("cluster %s: stopping %s failed", self.config.name,
                              type(part).__name__)

    async def stop(self) -> None:
        """Stop the parts, the shared configuration and the transport (idempotent)."""
        await self.stop_parts()
        await self.converger.stop()
        await self.shared_config.stop()
        if self.keys is not None:
            await self.keys.stop()
        await self.log.stop()
        if self._started:
            self._started = False
            await self.transport.stop()

    async def status(self) -> dict[str, Any]:
        """This node's ``cluster`` entry of ``/status``."""
        health = await self.transport.health()
        out: dict[str, Any] = {"name": self.config.name, "node": self.node,
                               "transport": health.to_json(), **self.shared_config.status()}
        loops = [self.log.reader, self.shared_config.applier, self.converger]
        if self.keys is not None:
            loops.append(self.keys.syncer)
        problems = [p for p in (loop.problem() for loop in loops) if p is not None]
        if problems:
            out["problems"] = problems
        # Ready for the cluster's work: the transport (and its slot membership) connected, every
        # part connected, every loop alive; else the first reason.
        reasons = [] if health.status is Status.CONNECTED else [
            f"transport: {health.reason or health.status.value}"]
        reasons += problems
        for part in self._running:
            part_health = await part.health()
            if part_health.status is not Status.CONNECTED:
                reasons.append(f"{type(part).__name__}: "
                               f"{part_health.reason or part_health.status.value}")
            out.setdefault("parts", []).append(
                {"part": type(part).__name__, **part_health.to_json(), **part.describe()})
        out["status"] = "connected" if not reasons else "connecting"
        if reasons:
            out["status_reason"] = "; ".join(reasons)
        return out

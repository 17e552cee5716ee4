"""The nodes of a cluster, from their heartbeats on the cluster's ``status`` log.

Every node appends a heartbeat, keyed by its ``node`` name, every ``heartbeat_interval``: who it
is (an instance id drawn at start, host, pid), its version, uptime, load and memory, what runs on
it and a snapshot of its metrics. Every node reads the whole log and keeps each node's latest
heartbeat; a node is live while that heartbeat is younger than ``node_timeout``. The age is
measured from when this node received the heartbeat, not from the sender's clock, so clocks that
disagree between machines do not make nodes look dead or alive; only the heartbeats read at
start, which were written before this node listened, are aged by the time they carry.

The log is compacted on the node name, so it holds one heartbeat per node that ever ran: a node
that stopped (its last heartbeat says ``stopped``) or went silent drops out of the picture after
``node_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from mqferry._cluster.host import host_stats, pid_runs, process_started
from mqferry._cluster.transport import ClusterLog, ClusterTransport, LogRecord
from mqferry._config.models import ClusterConfig
from mqferry._errors import MqferryError
from mqferry._logs import RetryLog
from mqferry._runtime.failures import LogLimiter
from mqferry._tasks import Supervisor
from mqferry._types import HealthStatus, Status
from mqferry._version import __version__

if TYPE_CHECKING:
    from mqferry._runtime.app import App

log = logging.getLogger(__name__)

__all__ = ["STATUS_LOG", "NodeDirectory", "NodeNameTaken", "directory_of", "local_heartbeat",
           "runs_of"]

#: The cluster log the heartbeats are written to.
STATUS_LOG = "status"

#: How many of the status log's last records a node reads at start. Compaction keeps a day of
#: heartbeats before it thins them (the cluster's logs keep their recent history), which is
#: far more than matters: a live node wrote within ``node_timeout``, so its latest heartbeat is
#: among the last ``nodes * node_timeout / heartbeat_interval`` records (5 per node with the
#: defaults): 5,000 covers a thousand nodes, and reads in about a second.
CATCH_UP_TAIL = 5000

#: The largest heartbeat written with its metrics; a larger one (thousands of rules) is written
#: without them, so the node still counts as live (Kafka refuses records above its
#: ``max.message.bytes``), and says so once.
MAX_HEARTBEAT_BYTES = 512 * 1024


class NodeNameTaken(MqferryError):
    """Another live instance of this cluster runs under this node's name."""


@dataclass(slots=True)
class _Seen:
    heartbeat: dict[str, Any]
    #: ``time.monotonic()`` when the heartbeat was written, as far as this node can tell.
    at: float


def runs_of(app: App, parts: Iterable[Any] = ()) -> dict[str, Any]:
    """What runs on this node: its sources and rules, and the session slots a part holds.

    A cluster part whose ``describe()`` has ``slots`` (the session slots this node holds) puts
    them here, so every node shows which node holds which slot.
    """
    out: dict[str, Any] = {"sources": sorted(app.sources), "rules": sorted(app.rules)}
    for part in parts:
        describe = getattr(part, "describe", None)
        if describe is None or isinstance(part, NodeDirectory):
            continue
        try:
            described = describe()
        except Exception:  # a part's failing description must not stop the heartbeats
            log.exception("cluster part %s: describe() failed", type(part).__name__)
            continue
        if isinstance(described, dict) and "slots" in described:
            out["slots"] = sorted(described["slots"])
    return out


def _cluster_parts(app: App) -> list[Any]:
    cluster = getattr(app, "cluster", None)
    return list(getattr(cluster, "parts", ()) or ()) if cluster is not None else []


def local_heartbeat(app: App, *, instance: str, status: str = "running",
                    started_at: float | None = None) -> dict[str, Any]:
    """This node's heartbeat as written to the log (also the API's view of a node alone).

    Args:
        app: the running app (its node name, metrics and what runs on it).
        instance: the id of this process's life as this node.
        status: ``running``, or ``stopped`` for the last heartbeat.
        started_at: when the node started, in epoch seconds (the process start by default).
    """
    now = time.time()
    started = process_started() if started_at is None else started_at
    return {"node": app.node, "instance": instance, "host": socket.gethostname(),
            "pid": os.getpid(), "version": __version__, "status": status,
            "started_at": int(started * 1000), "at": int(now * 1000),
            "uptime": int((now - started) * 1000), **host_stats(),
            "metrics": app.metrics(), "runs": runs_of(app, _cluster_parts(app))}


class NodeDirectory:
    """A cluster part: this node's heartbeats, and the latest heartbeat of every node.

    Args:
        app: the running app.
        transport: the cluster's transport (its ``status`` log).
        config: the ``cluster`` section (``heartbeat_interval``, ``node_timeout``, ``name``).
    """

    def __init__(self, app: App, transport: ClusterTransport, config: ClusterConfig) -> None:
        self.app = app
        self.config = config
        self.node = app.node
        #: This life of the node: tells a second process using the same name from this one.
        self.instance = uuid.uuid4().hex
        self.started_at = process_started()
        self._log: ClusterLog = transport.log(STATUS_LOG)
        self._seen: dict[str, _Seen] = {}
        self._position = 0  # the next offset to read
        self._caught_up = False
        #: The latest heartbeat of another instance using this node's name.
        self._rival: _Seen | None = None
        self._write_error: str | None = None
        self._limiter = LogLimiter(log, interval=60.0)
        self._retries = RetryLog(log, f"cluster {config.name}: status log")
        self._heartbeats = Supervisor(f"mqferry[cluster:{config.name}].heartbeat",
                                      self._heartbeat_loop)
        self._reader = Supervisor(f"mqferry[cluster:{config.name}].status", self._read_loop)
        self._running = False

    # -- lifecycle ------------------------------------------------------------------------

    async def claim(self) -> None:
        """Read the status log to its end; refuse this node's name if a live node uses it.

        Called before the app starts. A heartbeat under this name from a process of this host
        that no longer runs is a previous life of this node (``kill -9`` and start again) and
        does not block. When the log cannot be read within ``node_timeout`` the claim is not
        decided here: it is logged, and the running node reports a rival as soon as it hears one.

        Raises:
            NodeNameTaken: a live instance of this cluster runs under this node's name.
        """
        try:
            async with asyncio.timeout(self.config.node_timeout):
                await self._catch_up()
        except (MqferryError, TimeoutError) as exc:
            log.warning("cluster %s: could not read the status log to check that no other node "
                        "runs as %r (%s); starting, and watching for one",
                        self.config.name, self.node, exc or "timed out")
            return
        seen = self._seen.get(self.node)
        if seen is None or not self._is_rival(seen):
            return
        beat = seen.heartbeat
        raise NodeNameTaken(
            f"node {self.node!r} is already running in cluster {self.config.name!r} (pid "
            f"{beat.get('pid')} on host {beat.get('host')}, last heartbeat "
            f"{time.monotonic() - seen.at:.1f} s ago): give each node its own `node`",
            component=f"cluster:{self.config.name}")

    async def start(self) -> None:
        """Write the first heartbeat and follow the log (after :meth:`claim`, or alone)."""
        self._running = True
        # What is in the log now was written before this node listened (aged by its own
        # time); what comes after is live. Without a claim, learn where that line is here, so
        # a heartbeat written once start() has returned is never mistaken for an old one.
        with contextlib.suppress(MqferryError, TimeoutError):
            async with asyncio.timeout(self.config.heartbeat_interval):
                await self._catch_up()
        await self._beat()
        self._reader.start()
        self._heartbeats.start()

    async def stop(self) -> None:
        """Stop the heartbeats and write a last one saying ``stopped``. Idempotent."""
        if not self._running:
            return
        self._running = False
        await self._heartbeats.stop()
        await self._reader.stop()
        try:
            async with asyncio.timeout(self.config.heartbeat_interval * 2):
                await self._log.append(self.node, self._encode("stopped"))
        except (MqferryError, TimeoutError) as exc:
            log.warning("cluster %s: the last heartbeat (stopped) was not written: %s; the "
                        "other nodes see this node gone after node_timeout", self.config.name,
                        exc or "timed out")

    async def health(self) -> HealthStatus:
        """``connected`` while heartbeats are written and no other instance uses this name."""
        if not self._running:
            return HealthStatus(Status.STOPPED)
        rival = self._rival
        if rival is not None and self._live(rival):
            return HealthStatus(Status.DISCONNECTED, self._rival_text(rival))
        problem = self._write_error or self._heartbeats.problem() or self._reader.problem()
        if problem is not None:
            return HealthStatus(Status.CONNECTING, problem)
        return HealthStatus(Status.CONNECTED)

    def describe(self) -> dict[str, Any]:
        """This part's state: the node, its instance and the live nodes."""
        return {"part": "nodes", "node": self.node, "instance": self.instance,
                "live": sorted(b["node"] for b in self.nodes() if b["status"] == "running")}

    # -- the picture ----------------------------------------------------------------------

    def nodes(self) -> list[dict[str, Any]]:
        """The latest heartbeat of each node heard from within ``node_timeout``, by name.

        This node's own is made now (fresh metrics). A node whose last heartbeat says
        ``stopped`` is listed as such until it is ``node_timeout`` old.
        """
        out = {self.node: self.local()}
        for name, seen in self._seen.items():
            if name != self.node and self._live(seen):
                out[name] = seen.heartbeat
        return [out[name] for name in sorted(out)]

    def find(self, name: str) -> dict[str, Any] | None:
        """The latest heartbeat of node ``name`` if it is listed by :meth:`nodes`."""
        return next((b for b in self.nodes() if b["node"] == name), None)

    def node_metrics(self) -> dict[str, dict[str, dict[str, float]]]:
        """``node -> component id -> metrics`` of every running node (this one: now)."""
        # Not through nodes(): a metrics request needs no load, memory or description.
        out = {self.node: self.app.metrics()}
        for name, seen in self._seen.items():
            if (name != self.node and self._live(seen)
                    and seen.heartbeat.get("status") == "running"):
                out[name] = seen.heartbeat.get("metrics") or {}
        return {name: out[name] for name in sorted(out)}

    def local(self, status: str = "running") -> dict[str, Any]:
        """This node's heartbeat, made now."""
        return local_heartbeat(self.app, instance=self.instance, status=status,
                               started_at=self.started_at)

    # -- internals ------------------------------------------------------------------------

    def _live(self, seen: _Seen) -> bool:
        return time.monotonic() - seen.at < self.config.node_timeout

    def _is_rival(self, seen: _Seen) -> bool:
        beat = seen.heartbeat
        if beat.get("instance") == self.instance or beat.get("status") != "running":
            return False
        if not self._live(seen):
            return False
        pid = beat.get("pid")
        # A heartbeat from this machine by a process that no longer runs: a previous life.
        return not (beat.get("host") == socket.gethostname() and isinstance(pid, int)
                    and not pid_runs(pid))

    def _rival_text(self, seen: _Seen) -> str:
        beat = seen.heartbeat
        return (f"another instance runs as node {self.node!r} in cluster {self.config.name!r} "
                f"(pid {beat.get('pid')} on host {beat.get('host')}, last heartbeat "
                f"{time.monotonic() - seen.at:.1f} s ago): give each node its own `node`")

    def _encode(self, status: str) -> bytes:
        beat = self.local(status)
        data = orjson.dumps(beat)
        if len(data) <= MAX_HEARTBEAT_BYTES:
            return data
        self._limiter.warning("status-size", "cluster %s: this node's heartbeat is %d bytes "
                              "with its metrics (more than %d): written without them, so the "
                              "other nodes' totals leave this node out", self.config.name,
                              len(data), MAX_HEARTBEAT_BYTES)
        beat["metrics"] = {}
        beat["metrics_omitted"] = f"{len(data)} bytes with the metrics"
        return orjson.dumps(beat)

    async def _beat(self) -> None:
        try:
            async with asyncio.timeout(self.config.node_timeout):
                await self._log.append(self.node, self._encode("running"))
        except (MqferryError, TimeoutError) as exc:
            self._write_error = f"heartbeat not written: {exc or 'timed out'}"
            self._retries.failed(str(exc) or "timed out", self.config.heartbeat_interval)
        else:
            if self._write_error is not None:
                log.info("cluster %s: heartbeats written again", self.config.name)
            self._write_error = None
            self._retries.reset()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            await self._beat()

    async def _catch_up(self) -> None:
        """Read the records written before now, aging them by the time they carry."""
        if self._caught_up:
            return
        end = await self._log.end()
        start = max(self._position, end - CATCH_UP_TAIL)
        if end > start:
            records = self._log.read(start)
            try:
                async for record in records:
                    self._receive(record, live=False)
                    if record.offset >= end - 1:
                        break
            finally:
                # The iterator is left for good: close it now (a Kafka reader holds a
                # consumer) rather than when it is collected.
                aclose = getattr(records, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()
        self._position = max(self._position, end)
        self._caught_up = True

    async def _read_loop(self) -> None:
        while not self._caught_up:
            try:
                await self._catch_up()
            except MqferryError as exc:
                self._limiter.warning("status-end", "cluster %s: status log: %s; retrying",
                                      self.config.name, exc)
                await asyncio.sleep(self.config.heartbeat_interval)
        async for record in self._log.read(self._position):
            self._position = record.offset + 1
            self._receive(record, live=True)

    def _receive(self, record: LogRecord, *, live: bool) -> None:
        if record.value is None:
            self._seen.pop(record.key, None)
            return
        try:
            beat = orjson.loads(record.value)
            if not isinstance(beat, dict) or not isinstance(beat.get("node"), str):
                raise ValueError("not a heartbeat object with a node name")
        except ValueError as exc:
            self._limiter.warning("status-bad", "cluster %s: status log offset %d (key %r): "
                                  "ignored: %s", self.config.name, record.offset, record.key, exc)
            return
        now = time.monotonic()
        at = now
        if not live:
            sent = beat.get("at")
            age = time.time() - sent / 1000 if isinstance(sent, int | float) else float("inf")
            at = now - max(0.0, age)
        seen = _Seen(beat, at)
        self._seen[record.key] = seen
        if record.key == self.node and beat.get("instance") != self.instance:
            self._rival_heard(seen, live=live)

    def _rival_heard(self, seen: _Seen, *, live: bool) -> None:
        if not live or not self._running or not self._is_rival(seen):
            return
        first = self._rival is None or not self._live(self._rival) or (
            self._rival.heartbeat.get("instance") != seen.heartbeat.get("instance"))
        self._rival = seen
        if first:
            log.error("cluster %s: %s", self.config.name, self._rival_text(seen))


def directory_of(app: App) -> NodeDirectory | None:
    """The :class:`NodeDirectory` of ``app``'s cluster, or ``None`` (no cluster).

    Found as the cluster's ``nodes`` attribute or among its ``parts``.
    """
    cluster = getattr(app, "cluster", None)
    if cluster is None:
        return None
    found = getattr(cluster, "nodes", None)
    if isinstance(found, NodeDirectory):
        return found
    return next((p for p in _cluster_parts(app) if isinstance(p, NodeDirectory)), None)

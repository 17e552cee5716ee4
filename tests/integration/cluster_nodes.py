"""Several ``mqferry run`` processes on this machine from one configuration, as a cluster runs.

Each node gets the same mapping with its own ``node`` name, ``api.listen`` (a free port) and
``data_dir``; everything else is shared. The harness makes an API key for each node with the CLI
(``mqferry api-key create``), waits until each answers ``/status``, kills one with ``SIGKILL``,
stops them all (by their own pids only), reads their ``/status`` and metrics, and collects the
lines of their logs that report a failure.

No pytest import: benchmarks use it too.

    nodes = ClusterNodes(config, tmp_path, 3, overrides=lambda i: {"mqtt": {"clientid": ...}})
    nodes.start()
    nodes.kill(1)
    print(nodes.status(0)["sources"], nodes.failures())
    nodes.stop()
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port

#: What the Kafka consumer source logs on each assignment (its whole new assignment).
_ASSIGNED = re.compile(r"source (\S+): partitions assigned: (.*)$")

#: Log lines that say something failed (mqferry logs ``LEVEL`` after the timestamp).
FAILURE_MARKS = (" ERROR ", " CRITICAL ", "Traceback (most recent call last)")


def kafka_to_mqtt(kafka: str, mqtt: str, *, source: str, topic: str, prefix: str,
                  max_inflight: int = 1000) -> dict[str, Any]:
    """A configuration whose ``kafka_consumer`` source maps ``topic`` to ``<prefix>/<key>``.

    The MQTT payload is the record value, at QoS 1; no ``group_id``, so the default one is used.
    """
    return {
        "mqtt": {"server": mqtt},
        "connectors": {"kafka_consumer": {"kc": {"bootstrap_hosts": kafka}}},
        "sources": {"kafka_consumer": {source: {"connector": "kc", "parameters": {
            "offset_reset_policy": "earliest", "max_inflight": max_inflight,
            "offset_commit_interval_seconds": 1,
            "topic_mapping": [{"kafka_topic": topic, "mqtt_topic": f"{prefix}/${{key}}",
                               "qos": 1, "payload_template": "${value}"}]}}}},
    }


def _key_store(config: Mapping[str, Any], config_path: Path) -> Path:
    """Where the node of ``config`` (written to ``config_path``) keeps its API keys."""
    from mqferry._api.keys import api_key_store
    from mqferry._config.models import ApiConfig

    api = ApiConfig.model_validate(config.get("api") or {})
    return api_key_store(api, str(config.get("data_dir", "data")), config_path)


def merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, mappings key by key (neither is changed)."""
    out = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Node:
    """One node of the harness: its name, API address, files and process."""

    index: int
    name: str
    port: int
    workdir: Path
    process: MqferryProcess
    auth: tuple[str, str]
    killed: bool = False

    @property
    def url(self) -> str:
        """The base URL of its API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """Its operating-system process id."""
        assert self.process.proc is not None
        return self.process.proc.pid

    @property
    def alive(self) -> bool:
        """Whether its process runs."""
        proc = self.process.proc
        return proc is not None and proc.poll() is None

    @property
    def log(self) -> str:
        """Its log so far."""
        return self.process.log


class ClusterNodes:
    """N ``mqferry run -c <file>`` processes made from one configuration mapping.

    Args:
        config: the shared configuration (``node``, ``api.listen`` and ``data_dir`` are set per
            node).
        workdir: a directory of the caller's; node ``i`` lives in ``<workdir>/node<i>``.
        count: how many nodes.
        name: node names are ``<name><i>@127.0.0.1``, ``i`` from 1.
        overrides: more per-node settings, merged into node ``i``'s configuration (from 0).
    """

    def __init__(self, config: Mapping[str, Any], workdir: Path, count: int, *,
                 name: str = "mqferry",
                 overrides: Callable[[int], Mapping[str, Any]] | None = None) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self.nodes: list[Node] = []
        auth: tuple[str, str] | None = None
        first_store: Path | None = None
        for i in range(count):
            home = workdir / f"node{i + 1}"
            home.mkdir(parents=True, exist_ok=True)
            port = free_port()
            node_name = f"{name}{i + 1}@127.0.0.1"
            own = {"node": node_name, "api": {"enable": True, "listen": f"127.0.0.1:{port}"},
                   "data_dir": str(home / "data")}
            cfg = merged(merged(config, own), overrides(i) if overrides else {})
            proc = MqferryProcess(cfg, home)
            # One key, in every node's key store: a cluster shares its keys (the first node's
            # store seeds them), and plain nodes each have the same one.
            store = _key_store(cfg, proc.config_path)
            if auth is None or first_store is None:
                auth = api_key(proc.config_path)
                first_store = store
            else:
                store.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(first_store, store)
            self.nodes.append(Node(i, node_name, port, home, proc, auth))

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __getitem__(self, index: int) -> Node:
        return self.nodes[index]

    @property
    def live(self) -> list[Node]:
        """The nodes whose process runs."""
        return [n for n in self.nodes if n.alive]

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> ClusterNodes:
        """Start every node (all at once, as a fleet starts) and wait until each answers.

        Raises:
            AssertionError: a node exited or did not answer ``/status`` in ``timeout`` seconds
                (with its log).
        """
        for node in self.nodes:
            node.process.start()
        for node in self.nodes:
            self.wait_answering(node, timeout)
        return self

    def wait_answering(self, node: Node, timeout: float = 90.0) -> dict[str, Any]:
        """Wait until ``node`` answers ``GET /api/v5/status``; that answer."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not node.alive:
                raise AssertionError(f"{node.name} exited before answering /status; log:\n"
                                     f"{node.log}")
            try:
                return self.status(node.index)
            except (httpx.HTTPError, AssertionError) as exc:
                last = str(exc) or type(exc).__name__
            time.sleep(0.2)
        raise AssertionError(f"{node.name} did not answer /status in {timeout}s ({last}); "
                             f"log:\n{node.log}")

    def wait_until(self, what: str, predicate: Callable[[], bool], timeout: float = 60.0,
                   step: float = 0.5, detail: Callable[[], object] | None = None) -> None:
        """Wait until ``predicate()`` holds; fail naming ``what`` with the failures logged.

        ``detail()``, if given, is added to the failure message (what the nodes said).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(step)
        if not predicate():
            said = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"not within {timeout}s: {what}{said}; failures logged:\n"
                                 f"{self.failures_text()}")

    def kill(self, index: int) -> None:
        """``kill -9`` node ``index``: no flush, no goodbye."""
        node = self.nodes[index]
        node.process.kill()
        node.killed = True

    def stop(self, timeout: float = 60.0) -> dict[str, int]:
        """SIGTERM every live node (its own pid) and wait; the exit code per node name.

        A node still running after ``timeout`` seconds is killed and reported with -9.
        """
        codes: dict[str, int] = {}
        running = [n for n in self.nodes if n.alive]
        for node in running:  # all at once: a fleet stops together
            assert node.process.proc is not None
            node.process.proc.terminate()
        deadline = time.monotonic() + timeout
        for node in running:
            proc = node.process.proc
            assert proc is not None
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                codes[node.name] = -9
                continue
            # Exited: terminate() sends no second signal (which a process in its last steps,
            # its handlers gone, would die of), it collects the output.
            codes[node.name] = node.process.terminate(timeout)
        return codes

    # -- reading ----------------------------------------------------------------------------

    def get(self, index: int, path: str, timeout: float = 10.0) -> Any:
        """``GET /api/v5<path>`` on node ``index`` with its key; the JSON body."""
        node = self.nodes[index]
        r = httpx.get(f"{node.url}/api/v5{path}", auth=node.auth, timeout=timeout)
        assert r.status_code == 200, f"{node.name} GET {path}: {r.status_code} {r.text}"
        return r.json()

    def status(self, index: int) -> dict[str, Any]:
        """Node ``index``'s ``/api/v5/status``."""
        body: dict[str, Any] = self.get(index, "/status")
        return body

    def component(self, index: int, kind: str, cid: str) -> dict[str, Any]:
        """The status entry of a connector, action or source in node ``index``'s ``/status``."""
        for item in self.status(index)[kind]:
            if item["id"] == cid:
                return dict(item)
        raise AssertionError(f"{self.nodes[index].name} has no {kind} {cid}")

    def metrics(self, index: int, kind: str, cid: str) -> dict[str, Any]:
        """Node ``index``'s own counters of a source or action (``node_metrics`` entry)."""
        body = self.get(index, f"/{kind}/{cid}/metrics")
        name = self.nodes[index].name
        for entry in body.get("node_metrics", []):
            if entry.get("node") == name:
                return dict(entry["metrics"])
        return dict(body["metrics"])

    def failures(self) -> dict[str, list[str]]:
        """Per node, the log lines that report a failure."""
        return {n.name: [line for line in n.process.lines
                         if any(mark in line for mark in FAILURE_MARKS)]
                for n in self.nodes}

    def failures_text(self, limit: int = 40) -> str:
        """:meth:`failures` as text, at most ``limit`` lines per node."""
        out = []
        for name, lines in self.failures().items():
            out.append(f"--- {name}: {len(lines)} failure lines")
            out.extend(lines[:limit])
        return "\n".join(out)

    def logs(self) -> str:
        """Every node's log, one after the other."""
        return "\n".join(f"===== {n.name} (pid {n.pid})\n{n.log}" for n in self.nodes
                         if n.process.proc is not None)

    # -- the cluster ------------------------------------------------------------------------

    def slots(self, index: int) -> dict[int, bool]:
        """The session slots node ``index`` holds (its ``/status``), each with whether its
        session is connected; empty without a cluster."""
        cluster = self.status(index).get("cluster") or {}
        for part in cluster.get("parts", []):
            if "sessions" in part:
                return {int(s): bool(v.get("connected")) for s, v in part["sessions"].items()}
        return {}

    def slots_settled(self, count: int) -> bool:
        """The live nodes hold every one of ``count`` slots once, each session connected."""
        held = [self.slots(n.index) for n in self.live]
        every = [s for h in held for s in h]
        return (sorted(every) == list(range(count))
                and all(connected for h in held for connected in h.values()))

    # -- Kafka consumer sources -------------------------------------------------------------

    def assignment(self, index: int, source_id: str) -> set[int]:
        """The partitions node ``index``'s log says it holds now (its last assignment)."""
        for line in reversed(self.nodes[index].process.lines):
            m = _ASSIGNED.search(line)
            if m and m.group(1) == source_id:
                parts = m.group(2).strip()
                return set() if parts == "none" else {int(p.rsplit("/", 1)[1])
                                                       for p in parts.split(", ")}
        return set()

    def shared_out(self, source_id: str, partitions: int) -> bool:
        """Every live node holds some of the partitions, none twice, all of them covered."""
        held = [self.assignment(n.index, source_id) for n in self.live]
        union: set[int] = set().union(*held)
        return (all(held) and sum(len(h) for h in held) == len(union)
                and union == set(range(partitions)))

    def assignments(self, source_id: str) -> dict[str, list[int]]:
        """Per live node, the partitions it holds (for messages)."""
        return {n.name: sorted(self.assignment(n.index, source_id)) for n in self.live}

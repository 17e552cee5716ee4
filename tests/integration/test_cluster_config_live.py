"""The cluster's shared configuration and API keys on the real Kafka: three ``mqferry run``
processes from one file (``node``, ``api.listen`` and ``data_dir`` differ), the ``config`` log a
compacted topic of the ``mqferry_cluster`` transport, read back with kcat as the witness."""

from __future__ import annotations

import asyncio
import copy
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port

pytestmark = pytest.mark.integration


class Node:
    def __init__(self, proc: MqferryProcess, port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}/api/v5"

    def call(self, method: str, path: str, auth: tuple[str, str], **kw: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, auth=auth, timeout=30, **kw)


def rule_sql(node: Node, auth: tuple[str, str], rule: str) -> str | None:
    r = node.call("GET", f"/rules/{rule}", auth)
    return str(r.json()["sql"]) if r.status_code == 200 else None


def rules(node: Node, auth: tuple[str, str]) -> dict[str, str]:
    """The rules a node serves: id -> SQL (times and counters are the node's own)."""
    return {r["id"]: r["sql"] for r in node.call("GET", "/rules", auth).json()["data"]}


def eventually(check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.2)


def log_records(kafka_bootstrap: str, topic: str) -> list[tuple[str, dict[str, Any]]]:
    """Every record of the cluster's config log, read independently of mqferry."""
    done = subprocess.run(["kcat", "-b", kafka_bootstrap, "-C", "-t", topic, "-e", "-q",
                           "-f", "%k\t%s\n"], capture_output=True, text=True, timeout=60,
                          check=False)
    if done.returncode != 0 and "Unknown topic" in done.stderr:
        return []  # no configuration was ever written
    assert done.returncode == 0, done.stderr
    out = done.stdout
    records = []
    for line in out.splitlines():
        key, _, value = line.partition("\t")
        records.append((key, json.loads(value)))  # every record is valid JSON
    return records


@pytest.fixture
def cluster(kafka_bootstrap: str, new_topic: Callable[..., str],
            tmp_path: Path) -> Iterator[Callable[..., Node]]:
    """start(i, **changes): node ``i`` of a fresh cluster, from the shared file."""
    tag = uuid.uuid4().hex[:8]
    sink = new_topic()
    shared: dict[str, Any] = {
        # The nodes share the mqtt section; an unused port keeps them off the shared broker
        # (these tests are about the configuration log, not MQTT ingress).
        "mqtt": {"server": f"127.0.0.1:{free_port()}", "clientid": f"mqferry-cfg-{tag}"},
        "cluster": {"name": f"cfg-{tag}", "bootstrap_hosts": kafka_bootstrap},
        "connectors": {"kafka_producer": {"kp": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {"sink": {"connector": "kp", "parameters": {
            "topic": sink, "message": {"key": "", "value": "${payload}"}}}}},
        "rules": {"r1": {"sql": f'SELECT payload FROM "cfg-{tag}/1"',
                         "actions": ["kafka_producer:sink"]},
                  "r2": {"sql": f'SELECT payload FROM "cfg-{tag}/2"',
                         "actions": ["kafka_producer:sink"]}},
    }
    procs: list[MqferryProcess] = []

    def start(i: int, *, wait: bool = True, edit: Callable[[dict[str, Any]], None] | None = None
              ) -> Node:
        workdir = tmp_path / f"n{i}"
        workdir.mkdir()
        port = free_port()
        config = copy.deepcopy(shared) | {"node": f"n{i}@{tag}",
                                          "api": {"listen": f"127.0.0.1:{port}"},
                                          "data_dir": str(workdir / "data")}
        if edit is not None:
            edit(config)
        proc = MqferryProcess(config, workdir)
        procs.append(proc)
        proc.start()
        if wait:
            proc.wait_for_log("API listening")
        return Node(proc, port)

    start.topic = f"mqferry-cfg-{tag}-config"  # type: ignore[attr-defined]
    start.tag = tag  # type: ignore[attr-defined]
    yield start
    for proc in procs:
        if proc.proc is not None and proc.proc.poll() is None:
            assert proc.terminate() == 0, proc.log


def test_a_rule_changed_through_node_1_is_applied_by_nodes_2_and_3(cluster):
    n1 = cluster(1)
    auth = api_key(n1.proc.config_path)  # made while node 1 runs: it shares it
    n2, n3 = cluster(2), cluster(3)
    for node in (n2, n3):
        eventually(lambda node=node: node.call("GET", "/status", auth).status_code == 200,
                   what="the key made on node 1 is accepted")
    new_sql = f'SELECT payload FROM "cfg-{cluster.tag}/changed"'
    r = n1.call("PUT", "/rules/r1", auth, json={"sql": new_sql})
    assert r.status_code == 200, r.text
    started = time.monotonic()
    for node in (n2, n3):
        eventually(lambda node=node: rule_sql(node, auth, "r1") == new_sql, timeout=10,
                   what="the rule change reaches every node")
    assert time.monotonic() - started < 10
    # Every node writes the cluster's configuration back to its own file.
    for node in (n2, n3):
        eventually(lambda node=node: "changed" in node.proc.config_path.read_text(),
                   what="the file follows the cluster")


def test_an_api_key_made_on_node_1_is_accepted_by_node_3(cluster):
    n1, n3 = cluster(1), cluster(3)
    auth = api_key(n1.proc.config_path)
    eventually(lambda: n3.call("GET", "/whoami", auth).status_code == 200, timeout=10,
               what="node 3 accepts node 1's key")
    assert n3.call("GET", "/whoami", auth).json()["name"] == "t"
    assert n3.call("GET", "/whoami", ("mqf_unknown", "x")).status_code == 401


def test_two_conflicting_writes_one_wins_one_gets_409_and_the_log_stays_valid(
        cluster, kafka_bootstrap):
    n1 = cluster(1)
    auth = api_key(n1.proc.config_path)
    n2 = cluster(2)
    eventually(lambda: n2.call("GET", "/status", auth).status_code == 200)

    async def both(i: int) -> list[tuple[int, str]]:
        async with httpx.AsyncClient(auth=auth, timeout=30) as client:
            bodies = [(n1, "r1", f'SELECT payload FROM "a{i}"'),
                      (n2, "r2", f'SELECT payload FROM "b{i}"')]
            got = await asyncio.gather(*(client.put(f"{n.url}/rules/{r}", json={"sql": s})
                                         for n, r, s in bodies))
            return sorted((g.status_code, g.text) for g in got)

    outcomes = []
    for i in range(10):  # the writes race; until they meet on one version
        answers = asyncio.run(both(i))
        outcomes.append([code for code, _ in answers])
        if outcomes[-1] == [200, 409]:
            assert "CONFLICT" in answers[1][1], answers
            assert "changed since it was read (now version" in answers[1][1], answers
            break
        eventually(lambda: rules(n1, auth) == rules(n2, auth))
    assert outcomes[-1] == [200, 409], outcomes
    assert all(o in ([200, 200], [200, 409]) for o in outcomes), outcomes
    eventually(lambda: rules(n1, auth) == rules(n2, auth), what="both run one configuration")
    # The witness: replaying the log's compare-and-set gives what the nodes serve.
    records = log_records(kafka_bootstrap, cluster.topic)
    version, value = 0, None
    for key, body in records:
        if key == "config" and (value is None or body["base"] == version):
            version, value = body["version"], body["value"]
    assert value is not None
    assert {k: v["sql"] for k, v in value["rules"].items()} == rules(n1, auth)
    assert sum(1 for k, b in records if k == "config" and b["base"] + 1 == b["version"]) \
        >= len(outcomes) + 1


def test_a_different_file_under_the_same_cluster_name_is_refused(cluster, kafka_bootstrap):
    cluster(1)
    before = log_records(kafka_bootstrap, cluster.topic)

    def other(config: dict[str, Any]) -> None:
        config["rules"]["r3"] = {"sql": 'SELECT payload FROM "elsewhere"',
                                 "actions": ["kafka_producer:sink"]}

    n2 = cluster(2, wait=False, edit=other)
    assert n2.proc.proc is not None
    assert n2.proc.proc.wait(60) == 1
    n2.proc.terminate()
    log = n2.proc.log
    assert f"cluster 'cfg-{cluster.tag}'" in log and "version 1" in log, log
    assert "rules/r3" in log and "another cluster.name" in log, log
    assert "Traceback" not in log
    assert log_records(kafka_bootstrap, cluster.topic) == before  # nothing written


def test_a_file_edited_and_reloaded_on_node_2_reaches_node_1(cluster):
    n1 = cluster(1)
    auth = api_key(n1.proc.config_path)
    n2 = cluster(2)
    eventually(lambda: n2.call("GET", "/status", auth).status_code == 200)
    data = yaml.safe_load(n2.proc.config_path.read_text())
    new_sql = f'SELECT payload FROM "cfg-{cluster.tag}/reloaded"'
    data["rules"]["r2"]["sql"] = new_sql
    n2.proc.config_path.write_text(yaml.safe_dump(data))
    assert n2.proc.proc is not None
    n2.proc.proc.send_signal(signal.SIGHUP)
    eventually(lambda: rule_sql(n1, auth, "r2") == new_sql, timeout=10,
               what="node 2's reload reaches node 1")
    status = n1.call("GET", "/status", auth).json()["cluster"]
    assert status["config_version"] == status["cluster_config_version"] == 2, status

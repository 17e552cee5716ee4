"""The cluster's shared configuration, on the in-memory transport: several nodes in one process."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import ClassVar

import pytest
import yaml
from click.testing import CliRunner

from mqferry import ClusterConfig, MqferryError
from mqferry._api.keys import KeyStore
from mqferry._cli import build_cli
from mqferry._cluster.config_sync import ClusterConfigError, ClusterConflictError
from mqferry._cluster.node import ClusterNode
from mqferry._config import validate_config
from mqferry._runtime import App
from mqferry._runtime.run import join_cluster
from mqferry._types import HealthStatus, Status
from mqferry.testing import ClusterBus, MqttTwin
from tests.api.fakes import fake_plugins, reset_fakes

CONFIG = {
    "connectors": {"fake": {"c1": {"url": "fake://one"}}},
    "actions": {"fake": {"a1": {"connector": "c1", "parameters": {"topic": "a"}}}},
    "rules": {"r1": {"sql": 'SELECT payload FROM "t/1"', "actions": ["fake:a1"]},
              "r2": {"sql": 'SELECT payload FROM "t/2"', "actions": ["fake:a1"]}},
}


@pytest.fixture(scope="module")
def plugins():
    return fake_plugins()


class Node:
    def __init__(self, node, app, ctrl, path):
        self.node, self.app, self.ctrl, self.path = node, app, ctrl, path

    async def stop(self):
        await self.app.stop()
        await self.node.stop()


@pytest.fixture
async def cluster(plugins, tmp_path):
    """start(name, data) starts a node on one shared bus from a file holding ``data``."""
    reset_fakes()
    bus = ClusterBus()
    nodes: list[Node] = []

    async def start(name, data, *, cut=False):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"node": f"{name}@test", **data}))
        cfg = validate_config({"node": f"{name}@test", **data}, plugins.registries(),
                              plugins.function_table())
        transport = bus.transport(name)
        if cut:
            transport.cut()
        node = ClusterNode(ClusterConfig(name="plant", node_timeout="1s",
                                         heartbeat_interval="200ms"), f"{name}@test", transport)
        try:
            app, ctrl = await join_cluster(
                node, cfg, plugins, path,
                app_factory=lambda c: App(c, data_dir=tmp_path / name,
                                          mqtt_factory=MqttTwin.factory([])))
        except BaseException:
            await node.stop()
            raise
        await app.start()
        nodes.append(Node(node, app, ctrl, path))
        return nodes[-1]

    start.bus = bus
    yield start
    for n in reversed(nodes):
        await n.stop()


def records(bus):
    return [(r.key, json.loads(r.value)) for r in bus.log("config").records]


async def eventually(check, timeout=3.0):
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 - the states checked signal no event
            await asyncio.sleep(0.02)


def sql(node, rule):
    """The SQL of a rule as the node runs it."""
    return node.app.config.rules[rule].config.sql


def set_sql(rule, text):
    def edit(body):
        return {**body, "sql": text}
    return rule, edit


async def test_the_first_node_seeds_the_cluster_and_others_follow_its_changes(cluster):
    n1 = await cluster("n1", CONFIG)
    n2 = await cluster("n2", CONFIG)
    assert [(k, r["version"]) for k, r in records(cluster.bus)] == [("config", 1)]
    await n1.ctrl.change_rule(*set_sql("r1", 'SELECT payload FROM "t/9"'))
    # The writer returns after applying; the other node applies it from the log.
    assert "t/9" in sql(n1, "r1")
    await eventually(lambda: "t/9" in sql(n2, "r1"))
    assert n2.node.shared_config.applied == 2
    await n2.ctrl.flush()
    assert "t/9" in yaml.safe_load(n2.path.read_text())["rules"]["r1"]["sql"]  # files follow
    assert yaml.safe_load(n2.path.read_text())["node"] == "n2@test"  # its own sections stay


async def test_two_writes_on_one_version_one_wins_the_other_gets_a_conflict(cluster):
    n1 = await cluster("n1", CONFIG)
    n2 = await cluster("n2", CONFIG)
    results = await asyncio.gather(
        n1.ctrl.change_rule(*set_sql("r1", 'SELECT payload FROM "t/a"')),
        n2.ctrl.change_rule(*set_sql("r2", 'SELECT payload FROM "t/b"')),
        return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], ClusterConflictError)
    assert "changed since it was read (now version 2)" in str(errors[0])
    await eventually(lambda: n1.ctrl.data == n2.ctrl.data | {"node": "n1@test"})
    sqls = {sql(n1, "r1"), sql(n1, "r2")}
    assert ("t/a" in str(sqls)) != ("t/b" in str(sqls))  # exactly one change applied


async def test_a_rejected_last_record_is_restated_so_compaction_keeps_the_accepted_one(cluster):
    await cluster("n1", CONFIG)
    stale = copy.deepcopy(CONFIG)
    stale["rules"]["r1"]["sql"] = 'SELECT payload FROM "stale"'
    await cluster.bus.log("config").add("config", json.dumps(
        {"base": 0, "version": 1, "value": stale, "write_id": "x", "node": "gone"}).encode())
    await eventually(lambda: records(cluster.bus)[-1][1].get("restate"))
    cluster.bus.log("config").compact()
    [(_, last)] = records(cluster.bus)
    assert last["value"]["rules"]["r1"]["sql"] == CONFIG["rules"]["r1"]["sql"]
    n2 = await cluster("n2", CONFIG)  # reads only the restated record: equal
    assert n2.node.shared_config.note is None
    assert "stale" not in sql(n2, "r1")


async def test_a_file_behind_the_cluster_runs_the_clusters_configuration(cluster):
    n1 = await cluster("n1", CONFIG)
    await n1.ctrl.change_rule(*set_sql("r2", 'SELECT payload FROM "t/new"'))
    n2 = await cluster("n2", CONFIG)
    assert "t/new" in sql(n2, "r2")
    assert "behind" in n2.node.shared_config.note and "rules/r2" in n2.node.shared_config.note
    status = await n2.node.status()
    assert status["config_version"] == 2 and "rules/r2" in status["config_note"]
    await n2.ctrl.flush()
    assert "t/new" in yaml.safe_load(n2.path.read_text())["rules"]["r2"]["sql"]


async def test_a_different_file_under_the_same_name_is_refused_and_writes_nothing(cluster):
    await cluster("n1", CONFIG)
    other = copy.deepcopy(CONFIG)
    other["rules"]["r3"] = {"sql": 'SELECT payload FROM "x"', "actions": ["fake:a1"]}
    before = records(cluster.bus)
    with pytest.raises(ClusterConfigError) as err:
        await cluster("n2", other)
    message = str(err.value)
    assert "'plant'" in message and "version 1" in message and "rules/r3" in message
    assert "another cluster.name" in message
    assert records(cluster.bus) == before


async def test_a_cut_at_start_runs_the_file_and_converges_when_restored(cluster):
    n1 = await cluster("n1", CONFIG, cut=True)
    status = await n1.node.status()
    assert "cannot be read" in status["config_note"] and status["config_version"] == 0
    assert records(cluster.bus) == []
    await n1.node.transport.restore()
    await eventually(lambda: records(cluster.bus) != [], timeout=5)  # seeded once readable
    await eventually(lambda: n1.node.shared_config.applied == 1)
    assert "config_note" not in n1.node.shared_config.status()


async def test_a_node_cut_at_start_takes_the_clusters_configuration_when_restored(cluster):
    n1 = await cluster("n1", CONFIG)
    await n1.ctrl.change_rule(*set_sql("r1", 'SELECT payload FROM "t/cluster"'))
    n2 = await cluster("n2", CONFIG, cut=True)
    assert "t/cluster" not in sql(n2, "r1")  # the file's, for now
    await n2.node.transport.restore()
    await eventually(lambda: "t/cluster" in sql(n2, "r1"), timeout=5)
    assert [r["version"] for _, r in records(cluster.bus)] == [1, 2]  # nothing re-seeded


async def test_an_api_key_made_in_one_nodes_file_works_on_every_node(cluster, tmp_path):
    n1 = await cluster("n1", CONFIG)
    n2 = await cluster("n2", CONFIG)
    keys1 = n1.node.key_store(tmp_path / "k1.json")
    keys2 = n2.node.key_store(tmp_path / "k2.json")
    keys1.interval = keys2.interval = 0.05
    key, secret = KeyStore(tmp_path / "k1.json").create("ops")  # as `mqferry api-key create`
    await eventually(lambda: keys2.verify(key.api_key, secret))
    file2 = KeyStore(tmp_path / "k2.json")
    await eventually(lambda: key.api_key in file2.keys())  # noqa: SIM118 - reads the file
    # Disabled in node 2's file: stops working on node 1.
    path2 = tmp_path / "k2.json"
    raw = json.loads(path2.read_text())
    raw["keys"][0]["enable"] = False
    path2.write_text(json.dumps(raw))
    await eventually(lambda: keys1.check(key.api_key, secret)[1].endswith("is disabled"))
    # Deleted on node 1: unknown everywhere, and node 2's file does not bring it back.
    assert KeyStore(tmp_path / "k1.json").delete("ops")
    await eventually(lambda: not keys2.keys())
    await asyncio.sleep(0.3)
    assert not keys1.keys() and not KeyStore(path2).keys()
    assert [r["version"] for k, r in records(cluster.bus) if k == "api_keys"] == [1, 2, 3]


async def test_keys_in_a_file_made_before_the_node_joined_join_the_cluster(cluster, tmp_path):
    n1 = await cluster("n1", CONFIG)
    keys1 = n1.node.key_store(tmp_path / "k1.json")
    keys1.interval = 0.05
    first, _ = KeyStore(tmp_path / "k1.json").create("first")
    await eventually(lambda: keys1.shared.value("api_keys").version == 1)
    later, secret = KeyStore(tmp_path / "k2.json").create("later")  # before node 2 starts
    n2 = await cluster("n2", CONFIG)
    keys2 = n2.node.key_store(tmp_path / "k2.json")
    keys2.interval = 0.05
    await eventually(lambda: keys1.verify(later.api_key, secret))
    assert set(keys2.keys()) == {first.api_key, later.api_key}


class Recorder:
    """A cluster part that records its lifecycle; refuses the node when ``refuse`` is set."""

    events: ClassVar[list[str]] = []
    refuse = False
    health_now = HealthStatus(Status.CONNECTED)

    def __init__(self, app, transport, config):
        self.app, self.transport, self.config = app, transport, config

    async def claim(self):
        Recorder.events.append(f"claim running={self.app.running}")
        if Recorder.refuse:
            raise MqferryError("node name taken")

    async def start(self):
        Recorder.events.append(f"start running={self.app.running}")

    async def stop(self):
        Recorder.events.append("stop")

    async def health(self):
        return Recorder.health_now

    def describe(self):
        return {"slots": [1]}


async def test_parts_claim_before_the_app_starts_start_after_it_and_stop(plugins, tmp_path):
    Recorder.events, Recorder.refuse = [], False
    path = tmp_path / "n.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    cfg = validate_config(CONFIG, plugins.registries(), plugins.function_table())
    node = ClusterNode(ClusterConfig(name="p"), "n@test", ClusterBus().transport("n"))
    app, _ = await join_cluster(node, cfg, plugins, path, parts=[Recorder],
                                app_factory=lambda c: App(c, data_dir=tmp_path,
                                                          mqtt_factory=MqttTwin.factory([])))
    assert app.cluster is node and Recorder.events == ["claim running=False"]
    await app.start()
    await node.start_parts()
    status = await node.status()
    assert status["parts"] == [{"part": "Recorder", "status": "connected", "slots": [1]}]
    assert status["status"] == "connected" and "status_reason" not in status
    # a part that is not connected (a slot membership waiting for its assignment) and a
    # transport that cannot reach Kafka make the node's cluster status say why
    Recorder.health_now = HealthStatus(Status.CONNECTING, "waiting for the assignment")
    node.transport.cut()
    try:
        status = await node.status()
    finally:
        Recorder.health_now = HealthStatus(Status.CONNECTED)
        await node.transport.restore()
    assert status["status"] == "connecting"
    assert status["status_reason"] == ("transport: cluster transport unreachable (cut); "
                                       "Recorder: waiting for the assignment")
    await app.stop()
    await node.stop()
    await node.stop()
    assert Recorder.events == ["claim running=False", "start running=True", "stop"]


async def test_a_part_refusing_its_claim_stops_the_start(plugins, tmp_path):
    Recorder.events, Recorder.refuse = [], True
    path = tmp_path / "n.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    cfg = validate_config(CONFIG, plugins.registries(), plugins.function_table())
    node = ClusterNode(ClusterConfig(name="p"), "n@test", ClusterBus().transport("n"))
    with pytest.raises(MqferryError, match="node name taken"):
        await join_cluster(node, cfg, plugins, path, parts=[Recorder],
                           app_factory=lambda c: App(c, data_dir=tmp_path,
                                                     mqtt_factory=MqttTwin.factory([])))
    await node.stop()
    assert Recorder.events == ["claim running=False"]


async def test_a_reload_goes_through_the_log_and_every_node_applies_it(cluster):
    n1 = await cluster("n1", CONFIG)
    n2 = await cluster("n2", CONFIG)
    data = yaml.safe_load(n2.path.read_text())
    data["rules"]["r2"]["sql"] = 'SELECT payload FROM "t/reloaded"'
    n2.path.write_text(yaml.safe_dump(data))
    await n2.ctrl.reload()  # SIGHUP, or `mqferry config reload`
    assert "t/reloaded" in sql(n2, "r2")
    await eventually(lambda: "t/reloaded" in sql(n1, "r2"))
    assert [r["version"] for k, r in records(cluster.bus) if k == "config"] == [1, 2]


def test_api_key_create_says_how_keys_reach_the_cluster(tmp_path):
    config = tmp_path / "mqferry.yaml"
    config.write_text(yaml.safe_dump({"node": "n@h", "cluster": {"name": "plant-7"}}))
    r = CliRunner().invoke(build_cli(), ["api-key", "create", "-c", str(config), "--name", "ops"])
    assert r.exit_code == 0, r.output
    assert "cluster 'plant-7'" in r.stderr and "every node of the cluster" in r.stderr


async def test_reloading_an_unchanged_file_writes_nothing(cluster):
    n1 = await cluster("n1", CONFIG)
    plan = await n1.ctrl.reload()
    assert plan.empty
    assert [r["version"] for _, r in records(cluster.bus)] == [1]

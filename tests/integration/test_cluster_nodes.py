"""The multi-node harness itself: three ``mqferry run`` processes, one killed, the rest stopped."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.integration.cluster_nodes import ClusterNodes, merged

pytestmark = pytest.mark.integration


def test_merged_keeps_the_base_and_merges_mappings_key_by_key():
    base = {"mqtt": {"server": "a:1", "clientid": "x"}, "node": "n"}
    out = merged(base, {"mqtt": {"clientid": "y"}, "data_dir": "d"})
    assert out == {"mqtt": {"server": "a:1", "clientid": "y"}, "node": "n", "data_dir": "d"}
    assert base["mqtt"]["clientid"] == "x"


def test_three_nodes_answer_one_is_killed_the_others_stop_cleanly(mqtt_broker, tmp_path):
    tag = uuid.uuid4().hex[:6]
    config = {"mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}"}}
    nodes = ClusterNodes(config, tmp_path, 3,
                         overrides=lambda i: {"mqtt": {"clientid": f"harness-{tag}-{i}"}})
    try:
        nodes.start()
        assert [nodes.status(n.index)["node"] for n in nodes] == [
            "mqferry1@127.0.0.1", "mqferry2@127.0.0.1", "mqferry3@127.0.0.1"]
        assert len({n.port for n in nodes}) == 3
        assert len({n.workdir for n in nodes}) == 3
        dead = nodes[1].pid
        nodes.kill(1)
        with pytest.raises(ProcessLookupError):
            os.kill(dead, 0)
        assert [n.name for n in nodes.live] == ["mqferry1@127.0.0.1", "mqferry3@127.0.0.1"]
        assert nodes.status(2)["ready"] is True
    finally:
        codes = nodes.stop()
    assert codes == {"mqferry1@127.0.0.1": 0, "mqferry3@127.0.0.1": 0}, nodes.logs()
    assert nodes.failures() == {n.name: [] for n in nodes}, nodes.failures_text()

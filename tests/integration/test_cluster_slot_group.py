"""The session slots as a Kafka consumer group, against the real Kafka.

Each test uses its own cluster name, so its slot topic and group are its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from mqferry import ClusterConfig
from mqferry.testing import wait_until
from mqferry_cluster import mqferry_cluster_transport
from mqferry_cluster.slots import SlotGroup
from mqferry_cluster.topics import Topics
from tests.integration.test_kafka_topics_isolation import private_kafka  # noqa: F401

REPO_ROOT = Path(__file__).resolve().parents[2]


class Listener:
    """Records the slots held and the order of the calls."""

    def __init__(self, name: str, calls: list[tuple[str, str, frozenset[int]]]) -> None:
        self.name = name
        self.owned: set[int] = set()
        self.calls = calls

    async def assigned(self, slots: frozenset[int]) -> None:
        self.owned |= slots
        self.calls.append((self.name, "assigned", slots))

    async def revoked(self, slots: frozenset[int]) -> None:
        await asyncio.sleep(0.2)  # a drain: the coordinator must wait for it
        self.owned -= slots
        self.calls.append((self.name, "revoked", slots))


def _config(bootstrap: str, name: str, slots: int = 4) -> ClusterConfig:
    return ClusterConfig.model_validate({
        "name": name, "session_slots": slots, "node_timeout": "6s", "heartbeat_interval": "1s",
        "bootstrap_hosts": bootstrap})


async def test_slots_are_divided_and_a_leaving_node_hands_them_over(kafka_bootstrap: str) -> None:
    cfg = _config(kafka_bootstrap, f"slots-{uuid.uuid4().hex[:8]}")
    calls: list[tuple[str, str, frozenset[int]]] = []
    a, b = Listener("a", calls), Listener("b", calls)
    ta = mqferry_cluster_transport(config=cfg, node="a@test")
    tb = mqferry_cluster_transport(config=cfg, node="b@test")
    await ta.start()
    await tb.start()
    try:
        await ta.join_slots(4, a)
        await wait_until(lambda: a.owned == {0, 1, 2, 3}, timeout=30)
        await tb.join_slots(4, b)
        # divided: every slot held by exactly one node, both hold some
        await wait_until(lambda: len(a.owned) == 2 and len(b.owned) == 2
                         and a.owned | b.owned == {0, 1, 2, 3}, timeout=30)
        assert (await ta.health()).status.value == "connected"
        # b saw nothing until a had revoked (eager rebalance: revoked first, then assigned)
        first_b = next(i for i, c in enumerate(calls) if c[0] == "b")
        assert ("a", "revoked", frozenset({0, 1, 2, 3})) in calls[:first_b]
        await ta.stop()
        assert a.owned == set()  # stop revokes before it returns
        await wait_until(lambda: b.owned == {0, 1, 2, 3}, timeout=30)
    finally:
        await ta.stop()
        await tb.stop()


class _Member:
    """A slot group member in its own process (``tests/integration/slot_member.py``)."""

    def __init__(self, bootstrap: str, cluster: str, node: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.slot_member", bootstrap, cluster, node,
             "4", "6"], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
        self.held: set[int] = set()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def kill(self) -> None:
        """``kill -9``: it never leaves the group."""
        self.proc.kill()
        self.proc.wait()
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("held "):
                self.held = {int(s) for s in line.split()[1].split(",") if s} \
                    if len(line.split()) > 1 else set()


async def test_a_killed_node_loses_its_slots_after_the_node_timeout(kafka_bootstrap: str) -> None:
    name = f"slots-{uuid.uuid4().hex[:8]}"
    cfg = _config(kafka_bootstrap, name)
    member = _Member(kafka_bootstrap, name, "victim@test")
    calls: list[tuple[str, str, frozenset[int]]] = []
    survivor = Listener("s", calls)
    transport = mqferry_cluster_transport(config=cfg, node="survivor@test")
    await transport.start()
    try:
        await wait_until(lambda: member.held == {0, 1, 2, 3}, timeout=30)
        await transport.join_slots(4, survivor)
        await wait_until(lambda: len(member.held) == 2 and len(survivor.owned) == 2, timeout=30)
        member.kill()
        killed = time.monotonic()
        await wait_until(lambda: survivor.owned == {0, 1, 2, 3}, timeout=30)
        took = time.monotonic() - killed
        print(f"slots of the killed node reassigned {took:.1f}s after kill -9 "
              f"(node_timeout 6s)")
        assert took >= 3.0  # the coordinator waited for the session to expire
    finally:
        member.kill()
        await transport.stop()


async def test_a_node_cut_off_from_kafka_drops_its_slots_and_takes_them_again(
        private_kafka: tuple[str, int]) -> None:  # noqa: F811  (the imported fixture)
    bootstrap, pid = private_kafka
    cfg = _config(bootstrap, f"slots-{uuid.uuid4().hex[:8]}")
    calls: list[tuple[str, str, frozenset[int]]] = []
    a = Listener("a", calls)
    transport = mqferry_cluster_transport(config=cfg, node="a@test")
    await transport.start()
    try:
        await transport.join_slots(4, a)
        await wait_until(lambda: a.owned == {0, 1, 2, 3}, timeout=60)
        os.kill(pid, signal.SIGSTOP)  # the coordinator stops answering; nothing tells the node
        try:
            cut = time.monotonic()
            await wait_until(lambda: not a.owned, timeout=30)
            fenced = time.monotonic() - cut
            print(f"\nslots dropped {fenced:.1f}s after Kafka stopped answering "
                  f"(node_timeout 6s)")
            # within the last heartbeat before Kafka expires the membership and hands the slots
            # to other nodes (the survivors above get them 6.2 s after a kill -9)
            assert 4.5 <= fenced < 6.0
            health = await transport.health()
            assert health.status.value == "connecting", health
        finally:
            os.kill(pid, signal.SIGCONT)
        await wait_until(lambda: a.owned == {0, 1, 2, 3}, timeout=120)
        assert (await transport.health()).status.value == "connected"
    finally:
        await transport.stop()


class _CrashOnce(Topics):
    """Topics whose first ensure fails with an error no retry expects (a bug, say)."""

    crashed = False

    async def ensure(self, what: str, *, partitions: int = 1,
                     configs: dict[str, str] | None = None) -> str:
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("boom")
        return await super().ensure(what, partitions=partitions, configs=configs)


async def test_a_crashed_membership_loop_is_reported_and_restarted(kafka_bootstrap: str) -> None:
    cfg = _config(kafka_bootstrap, f"slots-{uuid.uuid4().hex[:8]}")
    options = {"bootstrap_servers": kafka_bootstrap}
    calls: list[tuple[str, str, frozenset[int]]] = []
    a = Listener("a", calls)
    group = SlotGroup(_CrashOnce(cfg.name, options), options, slots=4, listener=a,
                      node_timeout=6.0, heartbeat_interval=1.0)
    group.start()
    try:
        await wait_until(lambda: "boom" in group.health().reason, timeout=5)
        assert group.health().status.value == "connecting"
        await wait_until(lambda: a.owned == {0, 1, 2, 3}, timeout=30)  # restarted
    finally:
        await group.stop()
    assert a.owned == set() and group.health().status.value == "stopped"

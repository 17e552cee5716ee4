"""A bare member of a cluster's slot group, run as its own process so a test can ``kill -9`` it.

``python -m tests.integration.slot_member <bootstrap> <cluster> <node> <slots> <node_timeout>``
prints ``held <slot,slot,...>`` on every change of the slots it holds.
"""

from __future__ import annotations

import asyncio
import sys

from mqferry import ClusterConfig
from mqferry_cluster import mqferry_cluster_transport


class _Printer:
    def __init__(self) -> None:
        self.owned: set[int] = set()

    def _show(self) -> None:
        print("held " + ",".join(str(s) for s in sorted(self.owned)), flush=True)

    async def assigned(self, slots: frozenset[int]) -> None:
        self.owned |= slots
        self._show()

    async def revoked(self, slots: frozenset[int]) -> None:
        self.owned -= slots
        self._show()


async def _main(bootstrap: str, cluster: str, node: str, slots: int, timeout: float) -> None:
    config = ClusterConfig.model_validate({
        "name": cluster, "session_slots": slots, "node_timeout": f"{timeout}s",
        "heartbeat_interval": "1s", "bootstrap_hosts": bootstrap})
    transport = mqferry_cluster_transport(config=config, node=node)
    await transport.start()
    await transport.join_slots(slots, _Printer())
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]),
                      float(sys.argv[5])))

"""One cluster node taking MQTT input through its session slots, run as its own process.

``python -m tests.integration.slot_node CONFIG`` builds the app of ``CONFIG`` (which has a
``cluster`` section), joins the slot group on Kafka through the ``mqferry_cluster`` transport and
runs until SIGTERM (stopped in order) or ``kill -9``. On stdout, for the test to read:

- ``held <slots>``: the slots it holds, on each change;
- ``connected <slot>``: that slot's session is up and subscribed;
- ``first <slot> <time>``: that slot's session handed its first message to the rules (epoch s).
"""

from __future__ import annotations

import asyncio
import signal
import sys

from mqferry._cluster.slots import SlotSessions
from mqferry._config import load_config
from mqferry._logs import setup_logging
from mqferry._plugins import load_plugins
from mqferry._runtime import App


async def _watch(slots: SlotSessions) -> None:
    held: list[int] | None = None
    told: dict[int, set[str]] = {}
    while True:
        now = sorted(slots.sessions)
        if now != held:
            held = now
            print("held " + ",".join(map(str, now)), flush=True)
        for slot, session in list(slots.sessions.items()):
            seen = told.setdefault(id(session), set())
            if "connected" not in seen and session.connector.is_connected:
                seen.add("connected")
                print(f"connected {slot}", flush=True)
            if "first" not in seen and session.first_message is not None:
                seen.add("first")
                print(f"first {slot} {session.first_message:.3f}", flush=True)
        await asyncio.sleep(0.02)


async def _main(path: str) -> None:
    plugins = load_plugins()
    cfg = load_config(path, plugins.registries(), plugins.function_table())
    cluster = cfg.raw.cluster
    assert cluster is not None, "the configuration has no cluster section"
    app = App(cfg)
    transport = plugins.cluster_transport(cluster, cfg.raw.node)
    slots = SlotSessions(app, transport, cluster)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await transport.start()
    await app.start()
    await slots.start()
    watcher = asyncio.ensure_future(_watch(slots))
    await stop.wait()
    await slots.stop()
    await transport.stop()
    await app.stop()
    watcher.cancel()
    print("stopped", flush=True)


if __name__ == "__main__":
    setup_logging("info")
    asyncio.run(_main(sys.argv[1]))

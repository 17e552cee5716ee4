"""Run an :class:`App` until SIGINT/SIGTERM; in a cluster, join it first.

The first SIGINT or SIGTERM stops gracefully: actions flush, sources commit, the MQTT session
closes after the acknowledgements they release, exit code 0. That can take a while with Kafka
down (up to about a minute, docs/kafka-sink.md), so a second one stops at once, as ``kill -9``
would, with exit code 128 + the signal's number (130 for SIGINT, 143 for SIGTERM). Nothing
at-least-once promises is lost by it: what was not secured was not acknowledged either (at most
once, what memory buffers hold was acknowledged already, and is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mqferry._errors import ConfigError
from mqferry._mqtt.subscriptions import listing
from mqferry._runtime.app import App
from mqferry._tasks import describe

if TYPE_CHECKING:
    from mqferry._api import ApiServer
    from mqferry._cluster.node import ClusterNode, PartFactory
    from mqferry._config.loader import AppConfig
    from mqferry._plugins import PluginSet
    from mqferry._runtime.reconfig import Controller

log = logging.getLogger(__name__)

#: The cyclic collector's young-generation threshold while the bridge runs (Python's is 700).
#: Python counts container objects allocated minus freed since the last collection; a message
#: in flight holds several, so with 1,000 messages unacknowledged the default threshold ran a
#: collection every few dozen messages: ~2,000 young and ~180 older collections in 200,000
#: messages, 6% of the bridge's CPU at full load, freeing almost nothing (what a message
#: allocates is freed by reference counting when it is settled). At 20,000 the same run made
#: none; reference cycles still wait at most 20,000 allocations for a collection.
GC_YOUNG_THRESHOLD = 20_000


@contextlib.contextmanager
def steady_gc() -> Iterator[None]:
    """Tune the cyclic collector for the running bridge; restore Python's settings after.

    Everything built before (modules, config, plugins) lives as long as the process: it is
    frozen out of the collector's passes, which otherwise rescan it under load. The young
    generation's threshold is raised to :data:`GC_YOUNG_THRESHOLD`.
    """
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def cluster_parts() -> list[PartFactory]:
    """The parts a cluster node runs beside its app, started in this order, stopped in reverse.

    Each is built as ``Part(app, transport, cluster_config)`` once the app is built; a part
    with ``async claim()`` makes it before the app starts (and may refuse the node). The node
    directory comes first, so its heartbeats name the slots, and stops last, so its final
    heartbeat follows the slots' closing.
    """
    from mqferry._cluster.nodes import NodeDirectory
    from mqferry._cluster.slots import SlotSessions

    return [NodeDirectory, SlotSessions]


async def run_cluster(config: AppConfig, plugins: PluginSet, path: str | Path, *,
                      stop: asyncio.Event | None = None,
                      parts: list[PartFactory] | None = None) -> None:
    """Join the cluster of ``config``'s ``cluster`` section, then run the app as :func:`run_app`.

    Raises:
        ConfigError: no plugin provides the cluster transport, or its fields are invalid.
        ClusterConfigError: the file is a configuration the cluster never had.
    """
    from mqferry._cluster.node import ClusterNode

    section = config.raw.cluster
    if section is None:
        raise ConfigError([("cluster", "missing: this configuration has no cluster section")])
    node = ClusterNode(section, config.raw.node,
                       plugins.cluster_transport(section, config.raw.node))
    try:
        app, controller = await join_cluster(node, config, plugins, path,
                                             parts=cluster_parts() if parts is None else parts)
        await run_app(app, controller=controller, stop=stop)
    finally:
        await node.stop()


async def join_cluster(node: ClusterNode, config: AppConfig, plugins: PluginSet,
                       path: str | Path, *, parts: Sequence[PartFactory] = (),
                       app_factory: Callable[[AppConfig], App] = App) -> tuple[App, Controller]:
    """The start-up sequence of a cluster node, up to a built (not started) app.

    The transport starts and the cluster's configuration is agreed (an empty cluster is seeded
    from the file) *before* the app is built from it; the file is written back when the
    cluster's configuration differs from it. The ``parts`` are built and make their claims
    (:meth:`ClusterNode.claim`); :func:`run_app` starts them after the app.

    Raises:
        ClusterConfigError: the file is a configuration the cluster never had.
        MqferryError: a part's claim refused this node.
    """
    from mqferry._config.loader import validate_file_data
    from mqferry._config.yamlfile import read_yaml
    from mqferry._runtime.reconfig import Controller

    await node.start()
    file_data = await asyncio.to_thread(read_yaml, Path(path), env=False)
    data = await node.configure(file_data)
    if data is not file_data:  # the cluster's configuration, this node's own sections
        config = await asyncio.to_thread(
            validate_file_data, data, plugins.registries(), plugins.function_table())
    app = app_factory(config)
    controller = Controller(app, plugins, path=path, data=data)
    node.attach(app, controller, parts)
    if data is not file_data:
        controller.persist()  # the file follows the cluster
    await node.claim()
    return app, controller


#: What a second SIGINT/SIGTERM abandons.
ABANDONED = ("records buffered in memory are not sent, offsets not yet committed are not "
             "committed, sessions are not closed")
#: Why nothing at-least-once promises is lost when the stop is abandoned.
NOTHING_LOST = ("with delivery at_least_once nothing is lost: MQTT messages not yet "
                "acknowledged stay with the broker, which redelivers them, records of a Kafka "
                "source whose offsets are not committed are read again by its consumer group, "
                "and disk buffers keep what they hold")
#: What an abandoned stop loses with ``mqtt.delivery: at_most_once``.
AT_MOST_ONCE_LOST = ("mqtt.delivery is at_most_once: the MQTT messages among them were "
                     "acknowledged on receipt, and what memory buffers hold of them is lost; "
                     "records of a Kafka source whose offsets are not committed are read again, "
                     "and disk buffers keep what they hold")


def abandoned(app: App) -> str:
    """What a stop abandoned now leaves behind: each action's queued and in-flight records,
    and what that means for the configured delivery."""
    held = []
    for aid, action in sorted(app.actions.items()):
        metrics = getattr(action, "metrics", None)
        if metrics is None:
            continue
        snap = metrics.snapshot()
        queued, inflight = int(snap.get("queuing", 0)), int(snap.get("inflight", 0))
        if queued or inflight:
            held.append(f"{aid} holds {queued:,} queued and {inflight:,} in flight")
    what = "; ".join(held) if held else "no action holds records"
    lost = (AT_MOST_ONCE_LOST if app.config.raw.mqtt.delivery == "at_most_once"
            else NOTHING_LOST)
    return f"{ABANDONED} ({what}); {lost}"


def exit_now(code: int) -> None:
    """End the process at once with ``code``, after the log lines written so far."""
    logging.shutdown()
    os._exit(code)


class StopSignals:
    """SIGINT/SIGTERM: the first stops gracefully (sets ``stop``), the next one at once.

    Args:
        stop: set by the first signal; the graceful stop follows.
        abort: called with the exit code (128 + the signal's number) by the second signal;
            :func:`exit_now`, or a twin in tests.
    """

    def __init__(self, stop: asyncio.Event, abort: Callable[[int], None] = exit_now,
                 left: Callable[[], str] | None = None) -> None:
        self.stop = stop
        self.abort = abort
        self.left = left
        self.received = 0

    def __call__(self, sig: int) -> None:
        name = signal.Signals(sig).name
        self.received += 1
        if self.received == 1:
            log.info("%s: stopping gracefully (actions flush, sources commit); send SIGINT or "
                     "SIGTERM again to stop at once", name)
            self.stop.set()
            return
        try:
            what = ABANDONED if self.left is None else self.left()
        except Exception as exc:  # the abort must happen whatever the description does
            what = f"{ABANDONED} (what they hold could not be read: {describe(exc)})"
        log.warning("%s again: stopping at once, abandoning the graceful stop (exit code %d): "
                    "%s", name, 128 + sig, what)
        self.abort(128 + sig)


async def run_app(app: App, *, stop: asyncio.Event | None = None,
                  controller: Controller | None = None,
                  abort: Callable[[int], None] = exit_now) -> None:
    """Start ``app``, run until SIGINT/SIGTERM (or ``stop`` is set), then stop it gracefully.

    With a ``controller`` the instance is manageable: SIGHUP reloads the config file, and the
    REST API is served when the config's ``api.enable`` is on. In a cluster (``app.cluster``)
    the cluster's parts start after the app and stop before it. A second SIGINT/SIGTERM calls
    ``abort`` with the exit code (:class:`StopSignals`): the process ends at once.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    on_signal = StopSignals(stop, abort, lambda: abandoned(app))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    reloads: set[asyncio.Task[None]] = set()
    if controller is not None:
        def on_hup() -> None:
            task = loop.create_task(_reload(controller), name="mqferry[config].reload")
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
    server = None
    try:
        await app.start()
        log.info("mqferry running: %d rules, %d actions, %d sources; subscriptions: %s",
                 len(app.rules), len(app.actions), len(app.sources),
                 listing(sorted(app.topic_filters)) or "none")
        if app.cluster is not None:
            await app.cluster.start_parts()
        if controller is not None and app.config.raw.api.enable:
            server = await _start_api(controller)
        with steady_gc():
            await stop.wait()
        log.info("stopping: flushing in-flight messages")
    finally:
        if server is not None:
            await server.stop()
        if app.cluster is not None:
            await app.cluster.stop_parts()
        if controller is not None:
            await _flush(controller)
        await app.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        if controller is not None:
            loop.remove_signal_handler(signal.SIGHUP)
    log.info("stopped")


async def _reload(controller: Controller) -> None:
    from mqferry._runtime.reconfig import ConfigConflictError

    log.info("SIGHUP: reloading %s", controller.path)
    try:
        await controller.reload()
    except ConfigError as exc:
        log.error("the config file is invalid; nothing was changed:\n%s",
                  "\n".join(f"  {p}: {m}" if p else f"  {m}" for p, m in exc.problems))
    except ConfigConflictError as exc:
        log.error("not reloading %s: %s", controller.path, exc)
    except Exception:
        log.exception("reloading the config file failed; nothing was changed")


async def _flush(controller: Controller) -> None:
    # The API's last changes are written back in the background: see them on disk before exit.
    try:
        await controller.flush()
    except OSError as exc:
        log.error("the last configuration changes could not be written to %s: %s",
                  controller.path, exc)


async def _start_api(controller: Controller) -> ApiServer:
    from mqferry._api import ApiServer, KeyStore, create_api
    from mqferry._api.keys import api_key_store

    raw = controller.app.config.raw
    path = api_key_store(raw.api, raw.data_dir, controller.path)
    cluster = controller.app.cluster
    keys = cluster.key_store(path) if cluster is not None else KeyStore(path)
    if not keys.keys():
        log.warning("no API keys in %s: create one with `mqferry api-key create`", keys.path)
    server = ApiServer(create_api(controller, keys), raw.api)
    await server.start()
    return server

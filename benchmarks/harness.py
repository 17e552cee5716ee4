"""Shared steps of the benchmark scripts: a fresh topic and bridge per run, probe, load, result."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from bridges import Bridge, Brokers

from mqferry_bench.admin import (
    create_topic,
    delete_topics,
    probe_kafka_to_mqtt,
    probe_mqtt_to_kafka,
)
from mqferry_bench.runner import BenchRun, LoadSpec, run

WORK = Path("/tmp") / "mqferry-bench"  # noqa: S108 - configs and logs of the bridges


@contextmanager
def bridged(variant: str, direction: str, brokers: Brokers, *,
            max_message_bytes: int | None = 4 * 1024 * 1024) -> Iterator[tuple[Bridge, str, str]]:
    """A fresh Kafka topic and MQTT prefix, and the bridge started and probed.

    Yields ``(bridge, mqtt_prefix, kafka_topic)``; stops the bridge and deletes the topic after.
    """
    safe = re.sub(r"[^A-Za-z0-9-]+", "_", variant).strip("_")
    tag = f"{safe}-{direction}-{uuid.uuid4().hex[:6]}"
    topic, prefix = f"bench-{tag}", f"bench/{tag}"
    create_topic(brokers.kafka, topic, 1, max_message_bytes=max_message_bytes)
    bridge = Bridge(variant, direction, brokers, prefix=prefix, kafka_topic=topic,
                    workdir=WORK / tag)
    bridge.start()
    try:
        probe(bridge)
        yield bridge, prefix, topic
    finally:
        bridge.stop()
        delete_topics(brokers.kafka, [topic])


def probe(bridge: Bridge, timeout: float = 60.0) -> float:
    """Wait until the bridge carries a probe message end to end; seconds taken."""
    b = bridge.brokers
    try:
        if bridge.direction == "mqtt-kafka":
            return probe_mqtt_to_kafka(b.mqtt_host, b.mqtt_port, f"{bridge.prefix}/probe",
                                       b.kafka, bridge.kafka_topic, timeout=timeout)
        return probe_kafka_to_mqtt(b.kafka, bridge.kafka_topic, b.mqtt_host, b.mqtt_port,
                                   f"{bridge.prefix}/#", timeout=timeout)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}\n--- {bridge.log_path}:\n{bridge.log_text()[-3000:]}") from None


def spec_for(direction: str, brokers: Brokers, prefix: str, topic: str,
             **load: Any) -> LoadSpec:
    """A load spec aimed at one bridged run."""
    mqtt_topic = prefix if direction == "mqtt-kafka" else f"{prefix}/#"
    spec = LoadSpec(direction=direction,  # type: ignore[arg-type]
                    mqtt_host=brokers.mqtt_host, mqtt_port=brokers.mqtt_port,
                    kafka=brokers.kafka, mqtt_topic=mqtt_topic, kafka_topic=topic)
    return replace(spec, **load)


#: The development services' directory (``scripts/services.sh``).
DEV_DIR = Path(os.environ.get("MQFERRY_DEV_DIR", Path(__file__).resolve().parent.parent / ".dev"))
#: The development broker's JVM log (``scripts/services.sh``): its collector's pauses.
GC_LOG = DEV_DIR / "kafka" / "gc.log"
#: The development MQTT broker's store (``scripts/services.sh``): written anew at each save.
MQTT_STORE = DEV_DIR / "mosquitto" / "mosquitto.db"
#: ``[2026-12-06T08:47:06.561+0000][534.044s] Safepoint "G1CollectForAllocation", ... Total: 9 ns``
_SAFEPOINT = re.compile(r"^\[([^\]]+)\]\[[^\]]+\] Safepoint \"([^\"]+)\".*Total: (\d+) ns")


def broker_pauses(start: float, end: float, *, least_ms: float = 5.0, log: Path = GC_LOG
                  ) -> list[tuple[float, str, float]]:
    """The broker's JVM pauses (safepoints) of at least ``least_ms`` that ended between
    ``start`` and ``end`` (epoch seconds), as ``(end, name, ms)``; none without the log.

    Every client of the broker waits through such a pause, so a latency outlier that one falls
    in is the broker's, whichever bridge ran.
    """
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        m = _SAFEPOINT.match(line)
        if m is None:
            continue
        when = dt.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        ms = int(m.group(3)) / 1e6
        if start <= when <= end and ms >= least_ms:
            out.append((when, m.group(2), ms))
    return out


def mqtt_saved(start: float, end: float, *, store: Path = MQTT_STORE) -> float | None:
    """When the MQTT broker last saved its store, if that was between ``start`` and ``end``
    (epoch seconds); ``None`` otherwise, or without the store.

    Mosquitto writes its whole store and fsyncs it in its only thread: every client waits, for
    0.2-1.8 s with 100,000-500,000 stored messages (measured). A run that one falls in has a
    latency outlier of the broker's, whichever bridge ran (``scripts/services.sh`` saves only
    at stop now; a broker it started before still saves every minute). Read from the store's
    modification time, not from the broker's log, which reaches its file in blocks, minutes
    late.
    """
    try:
        when = store.stat().st_mtime
    except OSError:
        return None
    return when if start <= when <= end else None


def measure(variant: str, direction: str, brokers: Brokers, label: str = "",
            tick: Callable[[BenchRun, Bridge], None] | None = None,
            **load: Any) -> dict[str, Any]:
    """One run of ``variant`` under ``load``: its result, labelled, with the broker's pauses
    of 5 ms or more during the run (``broker_pauses_ms``) and whether the MQTT broker saved its
    store meanwhile (``mqtt_saved``)."""
    with bridged(variant, direction, brokers) as (bridge, prefix, topic):
        spec = spec_for(direction, brokers, prefix, topic, **load)
        step = (lambda r: tick(r, bridge)) if tick is not None else None
        began = time.time()
        result = run(spec, watch=bridge.pids, tick=step)
        ended = time.time()
        result["broker_pauses_ms"] = [round(ms, 1) for _, _, ms in broker_pauses(began, ended)]
        result["mqtt_saved"] = mqtt_saved(began, ended) is not None
        result["label"] = label or variant
        result["variant"] = variant
        result["bridge_log_tail"] = bridge.log_text()[-2000:]
    return result


#: Above this many stored messages the MQTT broker is not fit to measure on (see broker_store).
STORE_LIMIT = 100_000
#: ... or when the persistence file of our development Mosquitto is larger than this many MiB.
STORE_FILE_LIMIT_MB = 50.0


def broker_store(brokers: Brokers) -> int | None:
    """How many messages the MQTT broker stores now, by Mosquitto's ``$SYS`` count.

    ``None`` when the broker does not say within 15 s: Mosquitto publishes the count only when
    it changed since its last ``$SYS`` round, so a quiet broker may stay silent.
    """
    try:
        out = subprocess.run(
            ["mosquitto_sub", "-h", brokers.mqtt_host, "-p", str(brokers.mqtt_port),
             "-t", "$SYS/broker/store/messages/count", "-C", "1", "-W", "15"],
            capture_output=True, text=True, timeout=20, check=False).stdout.strip()
        return int(out)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def store_file_mb() -> float | None:
    """The size of our development Mosquitto's persistence file (``scripts/services.sh``), MiB."""
    dev = Path(os.environ.get("MQFERRY_DEV_DIR", Path(__file__).resolve().parent.parent / ".dev"))
    try:
        return (dev / "mosquitto" / "mosquitto.db").stat().st_size / 2**20
    except OSError:
        return None


def check_broker_store(brokers: Brokers, *, limit: int = STORE_LIMIT,
                       file_limit_mb: float = STORE_FILE_LIMIT_MB) -> str:
    """What the MQTT broker stores, as a phrase; refuses a broker that stores too much.

    Persistent sessions that earlier runs (tests, benchmarks) left keep queueing what matches
    their subscriptions, and Mosquitto writes its whole store every ``autosave_interval``
    (60 s before ``scripts/services.sh`` set it to 0: now at stop), pausing every client
    meanwhile: with 2.2 million stored messages (an 816 MB file) that was a 1-2 s stall in about
    one run in six, of every variant alike.

    Raises:
        SystemExit: the broker stores more than ``limit`` messages, or the persistence file of
            our development broker is larger than ``file_limit_mb``.
    """
    stored, size = broker_store(brokers), store_file_mb()
    if (stored is not None and stored > limit) or (size is not None and size > file_limit_mb):
        raise SystemExit(
            f"the MQTT broker at {brokers.mqtt} stores {stored if stored is not None else '?'} "
            f"messages (persistence file {size if size is not None else 0:.0f} MiB), queued for "
            f"persistent sessions of earlier runs; its periodic save of them stalls every "
            f"client, so runs on it measure the broker. Start it afresh with "
            f"`scripts/services.sh reset-mosquitto`.")
    count = "not told (unchanged)" if stored is None else f"{stored:,} messages"
    return f"{count}; persistence file {size:.1f} MiB" if size is not None else count


def save(results: list[dict[str, Any]], path: Path) -> None:
    """Write results as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "results": results}, indent=2) + "\n")

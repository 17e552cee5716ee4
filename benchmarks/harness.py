"""Shared steps of the benchmark scripts: a fresh topic and bridge per run, probe, load, result."""

from __future__ import annotations

import json
import re
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


def measure(variant: str, direction: str, brokers: Brokers, label: str = "",
            tick: Callable[[BenchRun, Bridge], None] | None = None,
            **load: Any) -> dict[str, Any]:
    """One run of ``variant`` under ``load``: its result, labelled."""
    with bridged(variant, direction, brokers) as (bridge, prefix, topic):
        spec = spec_for(direction, brokers, prefix, topic, **load)
        step = (lambda r: tick(r, bridge)) if tick is not None else None
        result = run(spec, watch=bridge.pids, tick=step)
        result["label"] = label or variant
        result["variant"] = variant
        result["bridge_log_tail"] = bridge.log_text()[-2000:]
    return result


def save(results: list[dict[str, Any]], path: Path) -> None:
    """Write results as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "results": results}, indent=2) + "\n")

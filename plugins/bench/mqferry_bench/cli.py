"""``mqferry bench``: load generator and verifier against a running bridge.

The bridge (mqferry, or a baseline) runs on its own; this command publishes numbered, timestamped
messages on one side and reads them back on the other, then prints what was delivered, lost,
duplicated and reordered, the throughput and the latency, and writes the same as JSON.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import click

from mqferry import MqferryError


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"expected HOST:PORT, got {value!r}")
    return host, int(port)


def _common(fn: Any) -> Any:
    options = [
        click.option("--mqtt", "mqtt", default="127.0.0.1:1883", show_default=True,
                     envvar="MQFERRY_BENCH_MQTT", help="MQTT broker HOST:PORT."),
        click.option("--kafka", "kafka", default="127.0.0.1:9092", show_default=True,
                     envvar="MQFERRY_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers."),
        click.option("--kafka-topic", required=True, help="Kafka topic."),
        click.option("-n", "--count", type=click.IntRange(min=1), default=None,
                     help="Messages in all (default 100000 unless --duration is given)."),
        click.option("-d", "--duration", type=click.FloatRange(min=0, min_open=True),
                     default=None, help="Send for this many seconds instead of a count."),
        click.option("-r", "--rate", type=click.FloatRange(min=0), default=0.0,
                     show_default=True, help="Messages/s in all; 0 for as fast as possible."),
        click.option("-s", "--size", type=click.IntRange(min=1), default=200,
                     show_default=True, help="Payload bytes."),
        click.option("--streams", type=click.IntRange(min=1), default=4, show_default=True,
                     help="MQTT publisher connections, or Kafka record keys."),
        click.option("-q", "--qos", type=click.IntRange(0, 1), default=1, show_default=True,
                     help="MQTT QoS."),
        click.option("--idle-timeout", type=float, default=60.0, show_default=True,
                     help="Stop waiting after this many seconds without a delivery."),
        click.option("--pid", "pids", type=int, multiple=True,
                     help="Bridge process to measure (CPU, peak RSS); repeat for a pipeline."),
        click.option("--label", default="", help="Name of this run in the output."),
        click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="Write the JSON result here (default: stdout)."),
        click.option("--progress/--no-progress", default=None,
                     help="Show a progress bar (default: when stderr is a terminal)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _run(direction: str, mqtt_topic: str, opts: dict[str, Any]) -> None:
    from mqferry_bench.report import print_results
    from mqferry_bench.runner import LoadSpec

    host, port = _host_port(opts["mqtt"])
    count = opts["count"] if opts["count"] or opts["duration"] else 100_000
    try:
        spec = LoadSpec(direction=direction,  # type: ignore[arg-type]
                        mqtt_host=host, mqtt_port=port, kafka=opts["kafka"],
                        mqtt_topic=mqtt_topic, kafka_topic=opts["kafka_topic"],
                        streams=opts["streams"], count=count, duration=opts["duration"],
                        rate=opts["rate"], size=opts["size"], qos=opts["qos"],
                        idle_timeout=opts["idle_timeout"])
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    pids = tuple(opts["pids"])
    show = sys.stderr.isatty() if opts["progress"] is None else opts["progress"]
    try:
        result = _with_progress(spec, pids, show)
    except (MqferryError, RuntimeError, TimeoutError, ConnectionError, OSError,
            ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    result["label"] = opts["label"] or direction
    print_results([result])
    text = json.dumps(result, indent=2)
    if opts["output"] is not None:
        opts["output"].write_text(text + "\n")
    else:
        click.echo(text)


def _with_progress(spec: Any, pids: tuple[int, ...], show: bool) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from mqferry_bench.runner import BenchRun, run

    watch = (lambda: pids) if pids else None
    if not show:
        return run(spec, watch=watch)
    total = spec.count if spec.count is not None else int(spec.duration)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), transient=True) as bar:
        sent = bar.add_task("published", total=total, info="")
        got = bar.add_task("delivered", total=total, info="")
        t0 = time.monotonic()

        def tick(b: BenchRun) -> None:
            elapsed = time.monotonic() - t0
            done = b.sent() if spec.count is not None else min(int(elapsed), total)
            bar.update(sent, completed=done, info=f"acked {b.acked():,}")
            bar.update(got, completed=min(b.delivered(), total) if spec.count else done,
                       info=f"{b.delivered():,} distinct")

        return run(spec, watch=watch, tick=tick)


@click.group("bench")
def bench() -> None:
    """Load generator and verifier: throughput, latency and loss through a running bridge."""


@bench.command("mqtt-kafka")
@_common
@click.option("--mqtt-topic", default=None,
              help="Topic prefix; publisher pN publishes to PREFIX/pN "
                   "(default: bench/<random>).")
def mqtt_kafka(mqtt_topic: str | None, **opts: Any) -> None:
    """Publish on MQTT, read the Kafka topic from its beginning.

    The bridge must forward every MQTT topic under the prefix to --kafka-topic with the MQTT
    payload as the record value (for mqferry: value template ${payload}).
    """
    _run("mqtt-kafka", mqtt_topic or f"bench/{uuid.uuid4().hex[:8]}", opts)


@bench.command("kafka-mqtt")
@_common
@click.option("--mqtt-topic", required=True,
              help="Topic filter the bridge publishes under (e.g. bench/out/#).")
def kafka_mqtt(mqtt_topic: str, **opts: Any) -> None:
    """Produce into the Kafka topic, subscribe on MQTT.

    The bridge must forward --kafka-topic to topics matching --mqtt-topic with the record value
    as the MQTT payload (for mqferry: payload_template ${value}).
    """
    _run("kafka-mqtt", mqtt_topic, opts)

"""The chaos scenario: a steady good MQTT -> Kafka stream while hostile traffic and a Kafka pause
hit the same mqferry process.

One mqferry (at-least-once) bridges ``<prefix>/#`` to Kafka, as the standard set does, and also
runs two hostile rules on the same MQTT session:

* ``deep``: ``SELECT 'deep' as kt, payload.d as d`` rendered whole (``${.}``) into Kafka; its
  messages carry ``{"d": <array nested 300 deep>}`` (issue #12, case 1);
* ``regex``: ``regex_match(payload, '^(a+)+$')`` on 30-byte payloads ``aaa...a!`` (case 3).

A third thread publishes one of each every :data:`HOSTILE_EVERY` seconds while the good stream
runs, and Kafka (a private broker of this scenario, never the shared one) is stopped with
``SIGSTOP`` for :data:`PAUSE` seconds at a third of the stream, then continued.

The same run without the hostile traffic (``calm``; Kafka still paused) is the reference. The
two variants are interleaved, ``MQFERRY_CHAOS_REPEAT`` times each (3 by default), and the medians
are reported: good-stream loss (must be 0), p50 and p99 latency, and p99 against ``calm``'s
(the target: within 2x). The load average is recorded around each run.

    python benchmarks/run.py --only-faults --scenario chaos
    python benchmarks/faults.py --scenario chaos --repeat 1

The private Kafka uses ``scripts/services.sh`` with its own ``MQFERRY_DEV_DIR`` and free ports;
its jars come from ``MQFERRY_KAFKA_LIBS`` or the ``.dev/kafka/libs`` of this checkout or of
``MQFERRY_DEV_DIR`` (``scripts/services.sh install`` puts them there).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import paho.mqtt.client as paho
import yaml
from bridges import VENV_BIN, Bridge, Brokers, mqferry_config
from harness import WORK, probe, spec_for
from rich.console import Console

from mqferry_bench.admin import create_topic, delete_topics
from mqferry_bench.report import print_results
from mqferry_bench.runner import BenchRun, run

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "scripts" / "services.sh"

RATE = 1000.0  # good messages per second, in all
DURATION = 45.0  # seconds of good stream
PAUSE = 5.0  # seconds Kafka is stopped
HOSTILE_EVERY = 3.0  # seconds between two rounds of hostile messages
DEEP = 300
RUNAWAY = b"a" * 29 + b"!"  # 30 bytes: backtracking takes minutes; a linear engine, microseconds
VARIANTS = ("calm", "chaos")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kafka_libs() -> Path:
    candidates = [os.environ.get("MQFERRY_KAFKA_LIBS"), str(ROOT / ".dev" / "kafka" / "libs")]
    if os.environ.get("MQFERRY_DEV_DIR"):
        candidates.append(str(Path(os.environ["MQFERRY_DEV_DIR"]) / "kafka" / "libs"))
    for c in candidates:
        if c and any(Path(c).glob(".kafka-*")):
            return Path(c)
    raise RuntimeError("no Kafka jars found: set MQFERRY_KAFKA_LIBS to a .dev/kafka/libs "
                       "directory filled by scripts/services.sh install")


class PrivateKafka:
    """A single-node Kafka of this scenario only: its own data directory and ports."""

    def __init__(self) -> None:
        self.dev = Path(tempfile.mkdtemp(prefix="mqferry-chaos-kafka-"))
        (self.dev / "kafka").mkdir()
        (self.dev / "kafka" / "libs").symlink_to(_kafka_libs())
        self.port = _free_port()
        # Every port its own: the development broker's, when set in the environment (a second
        # set of services on other ports), would be taken.
        self.env = {**os.environ, "MQFERRY_DEV_DIR": str(self.dev),
                    "MQFERRY_KAFKA_PORT": str(self.port),
                    "MQFERRY_KAFKA_CONTROLLER_PORT": str(_free_port()),
                    "MQFERRY_KAFKA_SASL_SSL_PORT": str(_free_port()),
                    "MQFERRY_KAFKA_SSL_PORT": str(_free_port())}

    @property
    def bootstrap(self) -> str:
        """``host:port``."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The broker's pid (from the pid file ``scripts/services.sh`` wrote)."""
        return int((self.dev / "kafka.pid").read_text().split()[0])

    def _services(self, *args: str) -> None:
        proc = subprocess.run(["bash", str(SERVICES), *args], env=self.env, capture_output=True,
                              text=True, timeout=240, check=False)
        if proc.returncode:
            raise RuntimeError(f"services.sh {' '.join(args)}: {proc.stderr[-2000:]}")

    def start(self) -> None:
        """Start it and wait until it answers."""
        self._services("start", "kafka")

    def stop(self) -> None:
        """Stop it (continuing it first, should it be stopped) and remove its data."""
        with suppress(OSError, ValueError):
            os.kill(self.pid, signal.SIGCONT)
        self._services("stop", "kafka")
        shutil.rmtree(self.dev, ignore_errors=True)

    def pause(self, seconds: float, note: Callable[[str], None]) -> None:
        """``kill -STOP`` for ``seconds``, then ``kill -CONT``."""
        pid = self.pid
        note(f"kill -STOP Kafka ({pid})")
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        note("kill -CONT Kafka")


def chaos_config(brokers: Brokers, *, prefix: str, hostile: str, kafka_topic: str,
                 poison_topic: str, clientid: str) -> dict[str, Any]:
    """The standard at-least-once bridge, plus the hostile rules on the same session."""
    cfg = mqferry_config("mqferry-alo", "mqtt-kafka", brokers, prefix=prefix,
                         kafka_topic=kafka_topic, clientid=clientid)
    cfg["actions"]["kafka_producer"]["poison"] = {"connector": "k", "parameters": {
        "topic": poison_topic, "message": {"key": "", "value": "${.}"}}}
    cfg["rules"]["deep"] = {
        "sql": f"SELECT 'deep' as kt, payload.d as d FROM \"{hostile}/deep/#\"",  # noqa: S608
        "actions": ["kafka_producer:poison"]}
    cfg["rules"]["regex"] = {
        "sql": f"SELECT regex_match(payload, '^(a+)+$') as m "  # noqa: S608
               f"FROM \"{hostile}/regex/#\"",
        "actions": ["kafka_producer:poison"]}
    return cfg


class ChaosBridge(Bridge):
    """mqferry with :func:`chaos_config`."""

    def __init__(self, brokers: Brokers, *, prefix: str, hostile: str, kafka_topic: str,
                 poison_topic: str, workdir: Path) -> None:
        super().__init__("mqferry-alo", "mqtt-kafka", brokers, prefix=prefix,
                         kafka_topic=kafka_topic, workdir=workdir)
        self.hostile, self.poison_topic = hostile, poison_topic

    def start(self) -> None:
        """Start mqferry with the chaos configuration."""
        self.starts += 1
        log = self._log()
        cfg = self.workdir / "mqferry-chaos.yaml"
        cfg.write_text(yaml.safe_dump(chaos_config(
            self.brokers, prefix=self.prefix, hostile=self.hostile,
            kafka_topic=self.kafka_topic, poison_topic=self.poison_topic,
            clientid=self.clientid)))
        self.procs = [subprocess.Popen([str(VENV_BIN / "mqferry"), "run", "-c", str(cfg)],
                                       cwd=self.workdir, stdout=log, stderr=log)]


class HostilePublisher:
    """Publishes a deep and a runaway-regex message every ``every`` seconds until stopped."""

    def __init__(self, brokers: Brokers, hostile: str, every: float) -> None:
        self.brokers, self.hostile, self.every = brokers, hostile, every
        self.sent = 0
        self.started = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-hostile", daemon=True)

    def _run(self) -> None:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                             client_id=f"chaos-hostile-{uuid.uuid4().hex[:6]}",
                             protocol=paho.MQTTv5)
        client.connect(self.brokers.mqtt_host, self.brokers.mqtt_port)
        client.loop_start()
        deep = b'{"d": ' + b"[" * DEEP + b"1" + b"]" * DEEP + b"}"
        try:
            while not self._stop.wait(self.every):
                client.publish(f"{self.hostile}/deep/{self.sent}", deep, qos=1)
                client.publish(f"{self.hostile}/regex/{self.sent}", RUNAWAY, qos=1)
                self.sent += 2
        finally:
            client.loop_stop()
            client.disconnect()

    def start(self) -> None:
        """Start publishing."""
        self.started = True
        self._thread.start()

    def stop(self) -> None:
        """Stop publishing (idempotent)."""
        self._stop.set()
        if self.started:
            self._thread.join(10)

    @property
    def stopped(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()


@contextmanager
def chaos_bridge(brokers: Brokers, tag: str) -> Iterator[tuple[ChaosBridge, str, str]]:
    """Fresh topics and prefixes, and the bridge started and probed."""
    topic, poison, prefix = f"chaos-{tag}", f"chaos-{tag}-poison", f"chaos/{tag}/good"
    create_topic(brokers.kafka, topic, 1, max_message_bytes=4 * 1024 * 1024)
    create_topic(brokers.kafka, poison, 1)
    bridge = ChaosBridge(brokers, prefix=prefix, hostile=f"chaos/{tag}/hostile",
                         kafka_topic=topic, poison_topic=poison, workdir=WORK / f"chaos-{tag}")
    bridge.start()
    try:
        probe(bridge)
        yield bridge, prefix, topic
    finally:
        bridge.stop()
        delete_topics(brokers.kafka, [topic, poison])


def run_variant(variant: str, kafka: PrivateKafka, brokers: Brokers, console: Console,
                rep: int) -> dict[str, Any]:
    """One run: the good stream, the Kafka pause, and with ``chaos`` the hostile traffic."""
    events: list[tuple[float, str]] = []
    t0 = time.monotonic()

    def note(text: str) -> None:
        events.append((round(time.monotonic() - t0, 1), text))
        console.print(f"  [{events[-1][0]:6.1f} s] {text}")

    tag = f"{variant}-{uuid.uuid4().hex[:6]}"
    load_before = os.getloadavg()
    threads: list[threading.Thread] = []
    hostile: HostilePublisher | None = None
    count = int(RATE * DURATION)
    with chaos_bridge(brokers, tag) as (bridge, prefix, topic):
        if variant == "chaos":
            hostile = HostilePublisher(brokers, bridge.hostile, HOSTILE_EVERY)

        def tick(r: BenchRun) -> None:
            sent = r.sent()
            if hostile is not None and not hostile.started and sent > 0:
                hostile.start()
                note("hostile traffic started")
            if not threads and sent >= count // 3:
                th = threading.Thread(target=kafka.pause, args=(PAUSE, note), name="chaos-pause")
                threads.append(th)
                th.start()
            if hostile is not None and sent >= count and not hostile.stopped:
                hostile.stop()
                note(f"hostile traffic stopped ({hostile.sent} messages)")

        spec = spec_for("mqtt-kafka", brokers, prefix, topic, count=count, rate=RATE,
                        size=200, streams=4, qos=1, idle_timeout=60.0, settle=3.0)
        note(f"chaos ({variant}): {count:,} good messages at {RATE:.0f}/s, run {rep}")
        try:
            result = run(spec, watch=bridge.pids, tick=tick)
        finally:
            if hostile is not None:
                hostile.stop()
            for th in threads:
                th.join(60)
        log = bridge.log_text()
        alive = bool(bridge.pids())
    result.update(
        label=f"chaos {variant} run {rep}", variant=variant, scenario="chaos", repetition=rep,
        title="good stream with poison messages, a runaway regex and a Kafka pause",
        events=events, expect_no_loss=True,
        hostile_sent=hostile.sent if hostile is not None else 0,
        load_avg={"before": [round(x, 2) for x in load_before],
                  "after": [round(x, 2) for x in os.getloadavg()]},
        bridge_alive_at_end=alive,
        bridge_log_warnings=[line for line in log.splitlines()
                             if " WARNING " in line or " ERROR " in line][-30:])
    return result


def repeats() -> int:
    """``MQFERRY_CHAOS_REPEAT`` (runs of each variant), 3 by default."""
    return max(1, int(os.environ.get("MQFERRY_CHAOS_REPEAT", "3")))


def run_chaos(brokers: Brokers, console: Console, repeat: int | None = None
              ) -> list[dict[str, Any]]:
    """Both variants, interleaved, ``repeat`` times each, against a private Kafka."""
    kafka = PrivateKafka()
    console.print(f"[bold]chaos[/]: starting a private Kafka on {kafka.bootstrap}")
    kafka.start()
    private = Brokers(mqtt_host=brokers.mqtt_host, mqtt_port=brokers.mqtt_port,
                      kafka=kafka.bootstrap)
    results = []
    try:
        for rep in range(1, (repeat or repeats()) + 1):
            for variant in VARIANTS:
                r = run_variant(variant, kafka, private, console, rep)
                results.append(r)
                print_results([r], console=console)
                loss, lat = r["loss"], r["timing"]["latency_ms"]
                console.print(f"  {variant}: lost {loss['lost']:,} of {loss['published']:,}; "
                              f"p50 {lat['p50']:,.0f} ms, p99 {lat['p99']:,.0f} ms; load "
                              f"{r['load_avg']['before'][0]:.1f} -> "
                              f"{r['load_avg']['after'][0]:.1f}")
    finally:
        kafka.stop()
    return results


def chaos_markdown(results: list[dict[str, Any]]) -> str:
    """Per variant: runs, loss summed, medians of p50/p99/max, and chaos p99 / calm p99."""
    rows = [r for r in results if r.get("scenario") == "chaos"]
    if not rows:
        return ""
    out = ["\n### Fault: chaos (poison messages, a runaway regex and a Kafka pause)\n",
           f"Good stream: {int(RATE * DURATION):,} messages at {RATE:.0f}/s, QoS 1, 4 "
           f"publishers; Kafka (private) stopped {PAUSE:.0f} s at a third of the stream; "
           f"`chaos` adds a {DEEP}-deep JSON message and a {len(RUNAWAY)}-byte runaway-regex "
           f"message every {HOSTILE_EVERY:.0f} s. Medians over the runs; variants "
           "interleaved.\n",
           "| variant | runs | published | delivered | lost | duplicated | hostile sent "
           "| p50 ms | p99 ms | max ms | p99 / calm p99 | load avg (1 min, before-after) "
           "| bridge alive |",
           "|" + " --- |" * 13]
    p99: dict[str, float] = {}
    for variant in VARIANTS:
        runs = [r for r in rows if r["variant"] == variant]
        if runs:
            p99[variant] = statistics.median(r["timing"]["latency_ms"]["p99"] for r in runs)
    for variant in VARIANTS:
        runs = [r for r in rows if r["variant"] == variant]
        if not runs:
            continue

        def med(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return float(statistics.median(r["timing"]["latency_ms"][key] for r in runs))

        total = {k: sum(r["loss"][k] for r in runs)
                 for k in ("published", "delivered", "lost", "duplicated")}
        vs = (f"{p99[variant] / p99['calm']:.2f}" if p99.get("calm") else "-")
        loads = "; ".join(f"{r['load_avg']['before'][0]:.1f}-{r['load_avg']['after'][0]:.1f}"
                          for r in runs)
        out.append(
            f"| {variant} | {len(runs)} | {total['published']:,} | {total['delivered']:,} | "
            f"{total['lost']:,} | {total['duplicated']:,} | "
            f"{sum(r['hostile_sent'] for r in runs):,} | {med('p50'):,.0f} | "
            f"{med('p99'):,.0f} | {med('max'):,.0f} | {vs} | {loads} | "
            f"{'yes' if all(r['bridge_alive_at_end'] for r in runs) else 'NO'} |")
    return "\n".join(out)

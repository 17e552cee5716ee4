"""The bridges under test, each started as its own process(es) on the same brokers.

Variants, by direction:

* ``pipe``: ``mosquitto_sub | kcat -P`` (MQTT -> Kafka) or ``kcat -C | mosquitto_pub -l``
  (Kafka -> MQTT): C tools, no rules, no guarantees; the near-limit reference.
* ``paho``: the hand-written bridges of ``benchmarks/baselines/`` (paho-mqtt + confluent-kafka,
  automatic acknowledgements).
* ``mq-bridge``: ``benchmarks/baselines/mq_bridge_route.py``, one mq-bridge route (Rust core)
  with QoS 1 and at-least-once delivery; publishes Kafka -> MQTT to ``<prefix>/mqbridge``.
* ``mqferry-amo``: mqferry with ``mqtt.delivery: at_most_once`` (MQTT -> Kafka only).
* ``mqferry-alo``: mqferry with its default, at-least-once delivery.
* ``floor`` (MQTT -> Kafka, only when named): ``benchmarks/baselines/floor_bridge.py``, the least
  work per message a one-process asyncio + aiokafka bridge can do with mqferry's at-least-once
  guarantee (its docstring says what it leaves out).
* ``floor-held`` (MQTT -> Kafka, only when named): the floor batching as mqferry's sink does (with
  two batches in flight the next waits, gathering what arrives meanwhile).
* ``floor2`` (MQTT -> Kafka, only when named): ``benchmarks/baselines/floor2_bridge.py``, the
  same floor split into an MQTT process and a Kafka process, as the pipe is.
* ``floor-rdk`` (MQTT -> Kafka, only when named): ``benchmarks/baselines/floor_rdk_bridge.py``,
  the floor with librdkafka (confluent-kafka) in place of aiokafka, its Kafka side on
  librdkafka's own threads.

MQTT -> Kafka bridges forward every topic under ``<prefix>/`` to the Kafka topic with the MQTT
payload as the record value; Kafka -> MQTT bridges publish each record value to
``<prefix>/<record key>`` at QoS 1.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
M2K_VARIANTS = ("pipe", "paho", "mq-bridge", "mqferry-amo", "mqferry-alo")
#: run only when named (``--variant floor``): a measuring stick, not a contender
M2K_EXTRA = ("floor", "floor-held", "floor2", "floor-rdk")
K2M_VARIANTS = ("pipe", "paho", "mq-bridge", "mqferry-alo")


@dataclass(frozen=True)
class Brokers:
    """Where the brokers are (from the variables of ``scripts/services.sh env``)."""

    mqtt_host: str = field(default_factory=lambda: os.environ.get("MQFERRY_MQTT_HOST",
                                                                   "127.0.0.1"))
    mqtt_port: int = field(default_factory=lambda: int(os.environ.get("MQFERRY_MQTT_PORT",
                                                                       "1883")))
    kafka: str = field(default_factory=lambda: kafka_bootstrap(os.environ))

    @property
    def mqtt(self) -> str:
        """``host:port``."""
        return f"{self.mqtt_host}:{self.mqtt_port}"


def kafka_bootstrap(env: Mapping[str, str]) -> str:
    """The Kafka broker of this checkout's ``scripts/services.sh``: ``MQFERRY_KAFKA_BOOTSTRAP``,
    else the port the script runs Kafka on (``MQFERRY_KAFKA_PORT``, 9092 by default).

    Raises:
        RuntimeError: the bootstrap names a broker on this machine on another port than the
            script's. The MQTT side and the fault scenarios use the script's brokers (the
            faults stop the Kafka of its pid file), so the bridges would run against another
            Kafka, one that tests may share, and the Kafka faults would test nothing.
    """
    port = env.get("MQFERRY_KAFKA_PORT") or "9092"
    bootstrap = env.get("MQFERRY_KAFKA_BOOTSTRAP")
    if not bootstrap:
        return f"127.0.0.1:{port}"
    for server in bootstrap.split(","):
        host, _, its_port = server.strip().rpartition(":")
        if host in _LOCAL and its_port != port:
            raise RuntimeError(
                f"MQFERRY_KAFKA_BOOTSTRAP={bootstrap} is not the Kafka of this checkout's "
                f"scripts/services.sh (port {port}, MQFERRY_KAFKA_PORT); export the variables "
                "of `scripts/services.sh env` run with the same MQFERRY_KAFKA_PORT")
    return bootstrap


#: hosts that name this machine (a bootstrap there must be this checkout's broker)
_LOCAL = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: run scripts/services.sh install")
    return path


def checkout_path(root: Path) -> str:
    """The ``PYTHONPATH`` that runs the core and plugins of the checkout at ``root``."""
    dirs = ["core"] + [str(p.relative_to(root)) for p in sorted((root / "plugins").iterdir())
                       if p.is_dir()]
    return os.pathsep.join(str(root / d) for d in dirs)


def mqferry_config(variant: str, direction: str, brokers: Brokers, *, prefix: str,
                   kafka_topic: str, clientid: str, params: dict[str, Any] | None = None,
                   mqtt_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The mqferry config of a variant; ``params`` go to the Kafka action or source,
    ``mqtt_params`` to the ``mqtt`` section."""
    kafka = {"bootstrap_hosts": brokers.kafka}
    mqtt = {"server": brokers.mqtt, "clientid": clientid,
            "delivery": "at_most_once" if variant == "mqferry-amo" else "at_least_once",
            **(mqtt_params or {})}
    if direction == "mqtt-kafka":
        return {
            "mqtt": mqtt, "log": {"level": "info"}, "api": {"enable": False},
            "connectors": {"kafka_producer": {"k": kafka}},
            "actions": {"kafka_producer": {"sink": {"connector": "k", "parameters": {
                "topic": kafka_topic, "message": {"key": "", "value": "${payload}"},
                **(params or {})}}}},
            "rules": {"bench": {"sql": f'SELECT payload, payload.x as x FROM "{prefix}/#"',  # noqa: S608
                                "actions": ["kafka_producer:sink"]}},
        }
    return {
        "mqtt": mqtt, "log": {"level": "info"}, "api": {"enable": False},
        "connectors": {"kafka_consumer": {"k": kafka}},
        "sources": {"kafka_consumer": {"src": {"connector": "k", "parameters": {
            "offset_reset_policy": "earliest",
            "topic_mapping": [{"kafka_topic": kafka_topic, "mqtt_topic": f"{prefix}/${{key}}",
                               "qos": 1, "payload_template": "${value}"}],
            **(params or {})}}}},
    }


class Bridge:
    """One bridge variant, started and stopped as OS processes.

    Args:
        variant: one of :data:`M2K_VARIANTS` or :data:`K2M_VARIANTS`.
        direction: ``mqtt-kafka`` or ``kafka-mqtt``.
        brokers: the brokers.
        prefix: MQTT topic prefix of the run.
        kafka_topic: Kafka topic of the run.
        workdir: where configs and logs go.
    """

    def __init__(self, variant: str, direction: str, brokers: Brokers, *, prefix: str,
                 kafka_topic: str, workdir: Path) -> None:
        allowed = M2K_VARIANTS + M2K_EXTRA if direction == "mqtt-kafka" else K2M_VARIANTS
        head, _, tree = variant.partition("@")
        base, *opts = head.split("+")
        if base not in allowed or ((tree or opts) and not base.startswith("mqferry")):
            raise ValueError(f"variant {variant!r} is not one of {', '.join(allowed)} for "
                             f"{direction}")
        self.variant, self.direction, self.brokers = base, direction, brokers
        self.label = variant
        #: ``mqferry-alo+max_linger_time=2ms``: parameters of the Kafka action (or source)
        self.params: dict[str, Any] = {}
        for opt in opts:
            key, _, value = opt.partition("=")
            self.params[key] = yaml.safe_load(value)
        #: ``mqferry-alo@/path/to/checkout``: run the mqferry of that checkout (an A/B against
        #: another branch in the same run, variants interleaved)
        self.env = None if not tree else {**os.environ, "PYTHONPATH": checkout_path(Path(tree))}
        #: ``mqferry-alo+mqtt.receive_maximum=4000``: a field of the ``mqtt`` section instead
        self.mqtt = {k.removeprefix("mqtt."): self.params.pop(k)
                     for k in list(self.params) if k.startswith("mqtt.")}
        #: ``mqferry-alo+loop=uvloop``: the event loop of ``mqferry run --loop``, not a parameter
        loop = self.params.pop("loop", None)
        if loop is not None:
            self.env = {**(self.env or os.environ), "MQFERRY_LOOP": str(loop)}
        #: ``mqferry-alo+env.NAME=value``: an environment variable of the bridge process
        for key in [k for k in self.params if k.startswith("env.")]:
            self.env = {**(self.env or os.environ), key[4:]: str(self.params.pop(key))}
        self.prefix, self.kafka_topic = prefix, kafka_topic
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []
        self.clientid = f"mqferry-bench-{prefix.replace('/', '-')}"
        self.starts = 0

    @property
    def log_path(self) -> Path:
        """The log of the (last) bridge process."""
        return self.workdir / f"{self.label.replace('/', '_')}.log"

    def pids(self) -> list[int]:
        """The pids of the running bridge processes."""
        return [p.pid for p in self.procs if p.poll() is None]

    def _log(self) -> IO[bytes]:
        f = self.log_path.open("ab")
        self._logs.append(f)
        return f

    def start(self) -> None:
        """Start the bridge (again, after :meth:`kill`, with the same identity)."""
        self.starts += 1
        b, log = self.brokers, self._log()
        if self.variant.startswith("mqferry"):
            cfg = self.workdir / f"{self.variant}.yaml"
            cfg.write_text(yaml.safe_dump(mqferry_config(
                self.variant, self.direction, b, prefix=self.prefix, kafka_topic=self.kafka_topic,
                clientid=self.clientid, params=self.params, mqtt_params=self.mqtt)))
            self.procs = [subprocess.Popen([str(VENV_BIN / "mqferry"), "run", "-c", str(cfg)],
                                           cwd=self.workdir, stdout=log, stderr=log,
                                           env=self.env)]
        elif self.variant == "paho" and self.direction == "mqtt-kafka":
            self.procs = [subprocess.Popen(
                [sys.executable, str(HERE / "baselines" / "mqtt_to_kafka_bridge.py"),
                 "--mqtt", b.mqtt, "--topic", f"{self.prefix}/#", "--kafka", b.kafka,
                 "--kafka-topic", self.kafka_topic], stdout=log, stderr=log)]
        elif self.variant == "paho":
            self.procs = [subprocess.Popen(
                [sys.executable, str(HERE / "baselines" / "kafka_to_mqtt_bridge.py"),
                 "--kafka", b.kafka, "--kafka-topic", self.kafka_topic, "--mqtt", b.mqtt,
                 "--prefix", self.prefix, "--group", self.clientid], stdout=log, stderr=log)]
        elif self.variant in ("floor", "floor-held"):
            self.procs = [subprocess.Popen(
                [str(VENV_BIN / "python"), str(HERE / "baselines" / "floor_bridge.py"),
                 "--mqtt", b.mqtt, "--topic", f"{self.prefix}/#", "--kafka", b.kafka,
                 "--kafka-topic", self.kafka_topic, "--client-id", self.clientid,
                 "--hold", "2" if self.variant == "floor-held" else "0"],
                stdout=log, stderr=log)]
        elif self.variant == "floor-rdk":
            self.procs = [subprocess.Popen(
                [str(VENV_BIN / "python"), str(HERE / "baselines" / "floor_rdk_bridge.py"),
                 "--mqtt", b.mqtt, "--topic", f"{self.prefix}/#", "--kafka", b.kafka,
                 "--kafka-topic", self.kafka_topic, "--client-id", self.clientid],
                stdout=log, stderr=log)]
        elif self.variant == "floor2":
            sock = self.workdir / f"floor2-{self.starts}.sock"
            script = [str(VENV_BIN / "python"), str(HERE / "baselines" / "floor2_bridge.py")]
            self.procs = [
                subprocess.Popen([*script, "kafka", "--sock", str(sock), "--kafka", b.kafka,
                                  "--kafka-topic", self.kafka_topic], stdout=log, stderr=log),
                subprocess.Popen([*script, "mqtt", "--sock", str(sock), "--mqtt", b.mqtt,
                                  "--topic", f"{self.prefix}/#", "--client-id", self.clientid],
                                 stdout=log, stderr=log)]
        elif self.variant == "mq-bridge":
            mqtt_topic = (f"{self.prefix}/#" if self.direction == "mqtt-kafka"
                          else f"{self.prefix}/mqbridge")
            self.procs = [subprocess.Popen(
                [sys.executable, str(HERE / "baselines" / "mq_bridge_route.py"),
                 "--direction", self.direction, "--mqtt", b.mqtt, "--topic", mqtt_topic,
                 "--kafka", b.kafka, "--kafka-topic", self.kafka_topic,
                 "--client-id", self.clientid], stdout=log, stderr=log)]
        elif self.direction == "mqtt-kafka":
            # Line-buffered: on a pipe, mosquitto_sub's stdio would hold the last few KB of
            # messages back until it exits (they looked lost in a first run).
            sub = subprocess.Popen(
                [_tool("stdbuf"), "-oL", _tool("mosquitto_sub"), "-h", b.mqtt_host,
                 "-p", str(b.mqtt_port), "-t", f"{self.prefix}/#", "-q", "1", "-i", self.clientid],
                stdout=subprocess.PIPE, stderr=log)
            kcat = subprocess.Popen(
                [_tool("kcat"), "-P", "-b", b.kafka, "-t", self.kafka_topic, "-q",
                 "-X", "message.max.bytes=4194304"], stdin=sub.stdout, stdout=log, stderr=log)
            assert sub.stdout is not None
            sub.stdout.close()  # kcat holds the read end now
            self.procs = [sub, kcat]
        else:
            kcat = subprocess.Popen(
                [_tool("kcat"), "-C", "-b", b.kafka, "-t", self.kafka_topic, "-o", "beginning",
                 "-u", "-q", "-f", "%s\n"], stdout=subprocess.PIPE, stderr=log)
            # -l publishes every line to one topic: all records go to <prefix>/pipe.
            pub = subprocess.Popen(
                [_tool("mosquitto_pub"), "-h", b.mqtt_host, "-p", str(b.mqtt_port),
                 "-t", f"{self.prefix}/pipe", "-q", "1", "-l", "-i", self.clientid],
                stdin=kcat.stdout, stdout=log, stderr=log)
            assert kcat.stdout is not None
            kcat.stdout.close()
            self.procs = [kcat, pub]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every process, then SIGKILL what is left after ``timeout`` seconds."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self._close_logs()

    def kill(self) -> None:
        """SIGKILL every process: no flush, no goodbye."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait(10)
        self._close_logs()

    def _close_logs(self) -> None:
        for f in self._logs:
            f.close()
        self._logs = []

    def log_text(self) -> str:
        """The bridge's log so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

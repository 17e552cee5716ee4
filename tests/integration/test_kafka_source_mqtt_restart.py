"""A Mosquitto restart during a Kafka -> MQTT stream: nothing is lost, order per partition kept.

The test runs its own Mosquitto (persistence on, so the witness's persistent session and its queue
survive the restart) and restarts it while mqferry streams.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.test_kafka_source import (
    _produce_slowly,
    assert_replay_only,
    by_partition,
    config,
    mapping,
    mqferry,  # noqa: F401 - fixture
    wait_until,
)

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A private Mosquitto with persistence, started and stopped by the test."""

    def __init__(self, workdir: Path) -> None:
        self.host, self.port = "127.0.0.1", _free_port()
        self.conf = workdir / "mosquitto.conf"
        (workdir / "data").mkdir()
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {workdir / 'data'}/\n"
            "max_inflight_messages 1000\nmax_queued_messages 1000000\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.host, self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class Gate:
    """A TCP forwarder in front of the broker for mqferry; closed, it refuses connections.

    Mosquitto 2.0 does not queue messages for a restored offline session until its client is
    back, so after the restart mqferry is let in only once the witness is subscribed again.
    """

    def __init__(self, broker: Broker) -> None:
        self.host, self.broker = "127.0.0.1", broker
        self.open = threading.Event()
        self._server = socket.create_server((self.host, 0))
        self.port = int(self._server.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self.open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection((self.broker.host, self.broker.port), 2)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._server.close()


class PersistentSub:
    """mosquitto_sub with a persistent MQTT 5 session; reconnects by itself after a restart."""

    def __init__(self, broker: Broker, topic: str) -> None:
        self.texts: list[str] = []
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-V", "5", "-q", "1",
             "-c", "-x", "3600", "-i", f"witness-{uuid.uuid4().hex[:8]}", "-t", topic],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.texts.append(line.rstrip("\n"))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


class _Text:
    def __init__(self, text: str) -> None:
        self.text = text


def _probe(broker: Broker, topic: str, sub: PersistentSub) -> bool:
    """Publish a probe the witness must see (it is subscribed again after a restart)."""
    mark = f"probe-{uuid.uuid4().hex[:6]}"
    subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-q", "1",
                    "-t", topic, "-m", mark], check=False, timeout=10)
    return wait_until(lambda: mark in sub.texts, 1.0)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


def test_mosquitto_restart_during_a_stream_loses_nothing(mqferry, broker, kafka_bootstrap,  # noqa: F811
                                                         new_topic, kcat_produce):
    topic = new_topic(partitions=2)
    prefix = f"mqrestart-{uuid.uuid4().hex[:6]}"
    per_partition = 5000
    params = {"topic_mapping": [mapping(topic, f"{prefix}/t", payload_template="${.value}")]}
    sub = PersistentSub(broker, f"{prefix}/t")
    gate = Gate(broker)
    try:
        time.sleep(0.5)  # the witness's session exists before anything is published
        gate.open.set()
        app = mqferry(config(kafka_bootstrap, gate, params=params))
        app.wait_ready(sources=1)
        producer = threading.Thread(target=_produce_slowly,
                                    args=(kcat_produce, topic, 2, per_partition))
        producer.start()
        assert wait_until(lambda: len(sub.texts) >= 1500, 60), app.log
        gate.open.clear()
        broker.stop()
        stopped_at = len(sub.texts)
        time.sleep(2.0)
        broker.start()
        # mqferry comes back only once the witness is subscribed again (see Gate).
        probe = f"{prefix}/t"
        assert wait_until(lambda: _probe(broker, probe, sub), 30)
        gate.open.set()
        producer.join()
        expected = {f"p{p}-{i}" for p in range(2) for i in range(per_partition)}
        assert wait_until(lambda: expected <= set(sub.texts), 120), (
            f"{len(expected - set(sub.texts))} missing\n{app.log[-3000:]}")
        time.sleep(1.0)
        got = list(sub.texts)
    finally:
        sub.close()
        gate.close()
    assert stopped_at < 2 * per_partition  # the restart happened mid-stream
    assert "consuming again" in app.log or "MQTT connection lost" in app.log, app.log
    records = [_Text(t) for t in got if not t.startswith("probe-")]
    assert_replay_only(by_partition(records), per_partition)
    assert app.terminate() == 0

"""A Mosquitto restart during a Kafka -> MQTT stream: nothing is lost, order per partition kept.

The test runs its own Mosquitto (persistence on, so the witness's persistent session and the
messages the broker holds for it survive the restart) and restarts it while mqferry streams. The
witness is paused before the restart, so that the broker always holds messages it acknowledged to
mqferry across the restart, whatever the machine's load: those are the ones that only a working
broker persistence delivers, and the test checks that they exist and that the broker saved them.
mqferry reconnects as soon as the broker is back; the witness's restored session keeps what
arrives for it until the witness is back too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.integration.mqferry_process import free_port
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


class Broker:
    """A private Mosquitto with persistence, started and stopped by the test."""

    def __init__(self, workdir: Path) -> None:
        self.host, self.port = "127.0.0.1", free_port()
        self.conf = workdir / "mosquitto.conf"
        self.data = workdir / "data"
        self.data.mkdir()
        self.logfile = workdir / "mosquitto.log"
        # As root, mosquitto switches to the "mosquitto" user, who cannot write to the test's
        # directory: it would then lose its whole state on the restart (the witness's session and
        # everything held for it) and say so only in its log at shutdown. scripts/services.sh
        # keeps root for the same reason.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{user}"
            f"persistence true\npersistence_location {self.data}/\n"
            "max_inflight_messages 1000\nmax_queued_messages 1000000\n"
            f"log_dest file {self.logfile}\nlog_type error\nlog_type warning\n"
            "log_type notice\nlog_type information\nconnection_messages true\n")
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
        raise RuntimeError(f"mosquitto did not start:\n{self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    @property
    def log(self) -> str:
        return self.logfile.read_text() if self.logfile.exists() else ""

    def saved(self) -> bool:
        """Whether the broker saved its state when it stopped (what the restart restores)."""
        return (self.data / "mosquitto.db").is_file() and "Error saving" not in self.log


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

    def pause(self) -> None:
        """Stop reading: the broker holds what it receives for the witness from now on."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        self.resume()  # a stopped process would keep SIGTERM pending
        self.proc.terminate()
        self.proc.wait(10)
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


class _Text:
    def __init__(self, text: str) -> None:
        self.text = text


def committed_offsets(bootstrap: str, group: str) -> dict[int, int]:
    """The offsets ``group`` committed, by partition (mqferry commits only what was PUBACKed)."""
    from aiokafka.admin import AIOKafkaAdminClient

    async def query() -> dict[int, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group)
        finally:
            await admin.close()
        return {tp.partition: meta.offset for tp, meta in offsets.items()}

    return asyncio.run(query())


def acknowledged(committed: dict[int, int]) -> set[str]:
    """Payloads of the records below ``committed`` (record i of partition p says "p<p>-<i>")."""
    return {f"p{p}-{i}" for p, end in committed.items() for i in range(end)}


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
    params = {"offset_commit_interval_seconds": "1s",
              "topic_mapping": [mapping(topic, f"{prefix}/t", payload_template="${.value}")]}
    cfg = config(kafka_bootstrap, broker, params=params)
    group = cfg["sources"]["kafka_consumer"]["src"]["parameters"]["group_id"]
    expected = {f"p{p}-{i}" for p in range(2) for i in range(per_partition)}
    sub = PersistentSub(broker, f"{prefix}/t")
    try:
        time.sleep(0.5)  # the witness's session exists before anything is published
        app = mqferry(cfg)
        app.wait_ready(sources=1)
        producer = threading.Thread(target=_produce_slowly,
                                    args=(kcat_produce, topic, 2, per_partition))
        producer.start()
        assert wait_until(lambda: len(sub.texts) >= 1500, 60), app.log
        sub.pause()
        # Records the broker acknowledged (mqferry committed them) that the witness has not seen:
        # the broker holds them for the witness's session across the restart.
        held: set[str] = set()

        def broker_holds_some() -> bool:
            nonlocal held
            held = acknowledged(committed_offsets(kafka_bootstrap, group)) - set(sub.texts)
            return len(held) >= 200

        assert wait_until(broker_holds_some, 60, step=0.5), app.log
        broker.stop()
        committed_at_stop = committed_offsets(kafka_bootstrap, group)
        assert broker.saved(), broker.log
        time.sleep(2.0)
        broker.start()
        sub.resume()
        producer.join()
        arrived = wait_until(lambda: expected <= set(sub.texts), 120)
        committed = committed_offsets(kafka_bootstrap, group)
        missing = expected - set(sub.texts)
        assert arrived, (
            f"{len(missing)} missing (of them {len(missing & held)} held by the broker for the "
            f"witness across the restart, {len(missing & acknowledged(committed))} acknowledged "
            f"to mqferry: committed {committed}), e.g. {sorted(missing)[:5]}\n"
            f"mqferry:\n{app.log[-3000:]}\nmosquitto:\n{broker.log[-3000:]}")
        time.sleep(1.0)
        got = list(sub.texts)
    finally:
        sub.close()
    assert sum(committed_at_stop.values()) < 2 * per_partition  # the restart happened mid-stream
    assert "consuming again" in app.log or "MQTT connection lost" in app.log, app.log
    records = [_Text(t) for t in got]
    assert_replay_only(by_partition(records), per_partition)
    assert app.terminate() == 0


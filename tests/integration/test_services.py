"""The development services and the witnesses of conftest.py, against the real brokers.

Other integration tests take these witnesses' word for what Kafka and Mosquitto hold, so they are
checked here first: what goes in through one real client comes out through another.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import MqttBroker

pytestmark = pytest.mark.integration

SERVICES_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "services.sh"


def run_services(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SERVICES_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def kafka_port(bootstrap: str) -> str:
    return bootstrap.split(",", maxsplit=1)[0].rpartition(":")[2]


def topic_partitions(bootstrap: str, topic: str) -> int:
    """Partition count of a topic, as kcat's metadata request sees it."""
    proc = subprocess.run(
        ["kcat", "-L", "-J", "-b", bootstrap, "-t", topic],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    (described,) = json.loads(proc.stdout)["topics"]
    assert "error" not in described, described
    return len(described["partitions"])


# ------------------------------------------------------------------------------------- Kafka


def test_kcat_round_trip_keeps_values_keys_headers_and_order(
    new_topic: Callable[..., str],
    kcat_produce: Callable[..., None],
    kcat_consume: Callable[..., list[dict[str, Any]]],
) -> None:
    topic = new_topic()
    before_ms = time.time() * 1000 - 5000
    values = ["first", "two\nlines", '{"temp": 21.5}']
    kcat_produce(topic, values, key="dev-1", headers=[("h", "1"), ("h", "2"), ("x", "a=b")])

    records = kcat_consume(topic, count=3, timeout=30)

    assert [r["payload"] for r in records] == values
    assert [r["key"] for r in records] == ["dev-1"] * 3
    assert [r["offset"] for r in records] == [0, 1, 2]
    assert {r["partition"] for r in records} == {0}
    assert records[0]["headers"] == [("h", "1"), ("h", "2"), ("x", "a=b")]
    assert all(r["ts"] >= before_ms for r in records)
    assert {r["topic"] for r in records} == {topic}


def test_kcat_consume_returns_what_it_has_when_time_runs_out(
    new_topic: Callable[..., str],
    kcat_produce: Callable[..., None],
    kcat_consume: Callable[..., list[dict[str, Any]]],
) -> None:
    topic = new_topic()
    kcat_produce(topic, ["only"])

    started = time.monotonic()
    records = kcat_consume(topic, count=2, timeout=1.5)

    assert time.monotonic() - started >= 1.5
    assert [(r["key"], r["payload"]) for r in records] == [(None, "only")]


def test_new_topic_has_the_partitions_asked_for(
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    kcat_produce: Callable[..., None],
    kcat_consume: Callable[..., list[dict[str, Any]]],
) -> None:
    topic = new_topic(3)
    other = new_topic(3)

    assert topic != other
    assert topic_partitions(kafka_bootstrap, topic) == 3
    kcat_produce(topic, ["p2"], partition=2)
    kcat_produce(topic, ["p0"], partition=0)
    records = kcat_consume(topic, count=2)
    assert [(r["partition"], r["offset"], r["payload"]) for r in records] == [
        (0, 0, "p0"),
        (2, 0, "p2"),
    ]


@pytest.mark.asyncio
async def test_new_topic_works_inside_a_running_event_loop(
    kafka_bootstrap: str,
    new_topic: Callable[..., str],
    kcat_consume: Callable[..., list[dict[str, Any]]],
) -> None:
    from aiokafka import AIOKafkaProducer

    topic = new_topic(2)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"from aiokafka", key=b"k", partition=1)
    finally:
        await producer.stop()

    (record,) = kcat_consume(topic, count=1)
    assert (record["partition"], record["key"], record["payload"]) == (1, "k", "from aiokafka")


def test_kafka_rejects_unknown_topics(kafka_bootstrap: str) -> None:
    # auto.create.topics.enable=false: a typo in a topic name must fail, not create a topic.
    missing = f"mqferry-test-missing-{time.time_ns()}"
    proc = subprocess.run(
        [
            *("kcat", "-P", "-b", kafka_bootstrap, "-t", missing),
            # librdkafka waits out a topic's creation this long before it gives up.
            *("-X", "message.timeout.ms=5000", "-X", "topic.metadata.propagation.max.ms=1000"),
        ],
        input="x",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    assert "Unknown topic or partition" in proc.stderr
    listing = subprocess.run(
        ["kcat", "-L", "-J", "-b", kafka_bootstrap],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert missing not in {t["topic"] for t in json.loads(listing.stdout)["topics"]}


def test_create_topic_is_idempotent(
    kafka_bootstrap: str, kcat_produce: Callable[..., None]
) -> None:
    topic = f"mqferry-test-create-{time.time_ns()}"
    env = {"MQFERRY_KAFKA_PORT": kafka_port(kafka_bootstrap)}

    first = run_services("create-topic", topic, "2", env=env)
    second = run_services("create-topic", topic, "2", env=env)

    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert topic_partitions(kafka_bootstrap, topic) == 2
    kcat_produce(topic, ["ok"])
    run_services(
        "kafka-tool",
        "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server",
        kafka_bootstrap,
        "--delete",
        "--topic",
        topic,
    )


def test_create_topic_rejects_a_bad_partition_count() -> None:
    proc = run_services("create-topic", "mqferry-test-never", "zero")

    assert proc.returncode != 0
    assert "PARTITIONS must be a positive integer" in proc.stderr


# ------------------------------------------------------------------------------------- MQTT


def test_mosquitto_round_trip_keeps_payload_bytes_and_properties(
    mosquitto_sub: Callable[..., Any], mosquitto_pub: Callable[..., None]
) -> None:
    base = f"mqferry-test/{time.time_ns()}"
    binary = b"\x00\x01bin\xff\n"
    with mosquitto_sub(f"{base}/#", 2) as sub:
        mosquitto_pub(
            f"{base}/a",
            "hello\nworld",
            props={"content-type": "text/plain", "response-topic": "r/t"},
            user_properties=[("k", "v1"), ("k", "v2")],
        )
        mosquitto_pub(f"{base}/b", binary, qos=0)
        messages = sub.wait(timeout=15)

    assert [m.topic for m in messages] == [f"{base}/a", f"{base}/b"]
    first, second = messages
    assert first.text == "hello\nworld"
    assert (first.qos, first.retain) == (1, False)
    assert first.user_properties == [("k", "v1"), ("k", "v2")]
    assert first.properties["content-type"] == "text/plain"
    assert first.properties["response-topic"] == "r/t"
    assert second.payload == binary
    assert second.qos == 0
    assert sub.lines[0] == f"{base}/a hello\nworld"


def test_mosquitto_sub_is_subscribed_when_the_block_starts(
    mosquitto_sub: Callable[..., Any], mosquitto_pub: Callable[..., None]
) -> None:
    # No retained message and no sleep: a publish right at the start must still arrive.
    topic = f"mqferry-test/{time.time_ns()}/now"
    with mosquitto_sub(topic, 1) as sub:
        mosquitto_pub(topic, "now")
        messages = sub.wait(timeout=15)

    assert [m.text for m in messages] == ["now"]
    assert sub.proc is not None
    assert sub.proc.returncode == 0  # it left by itself after -C messages


def test_mosquitto_sub_wait_returns_fewer_on_time_out(
    mosquitto_sub: Callable[..., Any], mosquitto_pub: Callable[..., None]
) -> None:
    topic = f"mqferry-test/{time.time_ns()}/few"
    with mosquitto_sub(topic, 3) as sub:
        mosquitto_pub(topic, "one")
        started = time.monotonic()
        messages = sub.wait(timeout=1.0)

    assert time.monotonic() - started >= 1.0
    assert [m.text for m in messages] == ["one"]


def test_mosquitto_sub_with_a_filter_that_covers_its_sync_topic(
    mosquitto_sub: Callable[..., Any], mosquitto_pub: Callable[..., None]
) -> None:
    # Then mosquitto_sub cannot count with -C (it gets its own sync message twice): wait() counts.
    topic = f"mqferry-test/{time.time_ns()}/covered"
    with mosquitto_sub([topic, "mqferry-test-sync/#"], 2) as sub:
        mosquitto_pub(topic, "mine")
        mosquitto_pub(topic, "")
        messages = sub.wait(timeout=15)

    assert [(m.topic, m.payload) for m in messages] == [(topic, b"mine"), (topic, b"")]


def test_mosquitto_sub_clears_its_retained_sync_message(
    mosquitto_sub: Callable[..., Any], mosquitto_pub: Callable[..., None], mqtt_broker: MqttBroker
) -> None:
    topic = f"mqferry-test/{time.time_ns()}/clear"
    with mosquitto_sub(topic, 1) as sub:
        mosquitto_pub(topic, "x")
        sub.wait(timeout=15)

    # A fresh subscriber to the whole sync namespace gets every retained message left there.
    leftovers = subprocess.run(
        [
            *("mosquitto_sub", "-h", mqtt_broker.host, "-p", str(mqtt_broker.port)),
            *("-t", "mqferry-test-sync/#", "-v", "-W", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert leftovers.stdout == ""


def test_mqtt_broker_fixture_points_to_a_live_broker(mqtt_broker: MqttBroker) -> None:
    with socket.create_connection((mqtt_broker.host, mqtt_broker.port), timeout=5):
        pass
    assert str(mqtt_broker) == f"{mqtt_broker.host}:{mqtt_broker.port}"


# ------------------------------------------------------------------------------------- services.sh


def test_env_prints_the_client_variables() -> None:
    proc = run_services("env", env={"MQFERRY_KAFKA_PORT": "19092", "MQFERRY_MQTT_PORT": "11883"})

    assert proc.returncode == 0
    # The secured listeners' variables follow when the running brokers have them.
    assert proc.stdout.splitlines()[:3] == [
        "MQFERRY_KAFKA_BOOTSTRAP=127.0.0.1:19092",
        "MQFERRY_MQTT_HOST=127.0.0.1",
        "MQFERRY_MQTT_PORT=11883",
    ]


def test_status_of_running_services_names_their_processes(
    kafka_bootstrap: str, mqtt_broker: MqttBroker
) -> None:
    env = {
        "MQFERRY_KAFKA_PORT": kafka_port(kafka_bootstrap),
        "MQFERRY_MQTT_PORT": str(mqtt_broker.port),
    }
    proc = run_services("status", env=env)
    if proc.returncode != 0:
        pytest.skip(f"services not started by scripts/services.sh here: {proc.stdout.strip()}")

    lines = dict(line.split(": ", 1) for line in proc.stdout.splitlines())
    kafka_pid = int(lines["kafka"].split("pid=")[1].split()[0])
    mosquitto_pid = int(lines["mosquitto"].split("pid=")[1].split()[0])
    assert f"bootstrap={kafka_bootstrap}" in lines["kafka"]
    assert f"listener={mqtt_broker}" in lines["mosquitto"]
    assert b"kafka.Kafka" in Path(f"/proc/{kafka_pid}/cmdline").read_bytes()
    assert b"mosquitto" in Path(f"/proc/{mosquitto_pid}/cmdline").read_bytes()


@pytest.fixture
def sleeper() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts harmless processes to stand for services; reaps them as soon as they end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sleep", "300"])
        # Reap at once: a zombie still answers `kill -0`, and stop would wait for it.
        threading.Thread(target=proc.wait, daemon=True).start()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)


def test_stop_kills_only_the_processes_in_its_pid_files(
    tmp_path: Path, sleeper: Callable[[], subprocess.Popen[bytes]]
) -> None:
    ours, bystander = sleeper(), sleeper()
    (tmp_path / "kafka.pid").write_text(f"{ours.pid}\n")
    env = {"MQFERRY_DEV_DIR": str(tmp_path)}

    status = run_services("status", env=env)
    assert status.returncode != 0  # mosquitto is not running here
    assert f"kafka: running pid={ours.pid}" in status.stdout
    assert "mosquitto: stopped" in status.stdout

    stop = run_services("stop", env=env)

    assert stop.returncode == 0, stop.stderr
    assert ours.wait(timeout=10) == -15  # SIGTERM
    assert bystander.poll() is None
    assert not (tmp_path / "kafka.pid").exists()
    assert "kafka: stopped" in run_services("status", env=env).stdout


def test_stale_pid_file_reads_as_stopped_and_is_removed(
    tmp_path: Path, sleeper: Callable[[], subprocess.Popen[bytes]]
) -> None:
    gone = sleeper()
    gone.kill()
    gone.wait(timeout=5)
    (tmp_path / "mosquitto.pid").write_text(f"{gone.pid}\n")

    status = run_services("status", env={"MQFERRY_DEV_DIR": str(tmp_path)})

    assert "mosquitto: stopped" in status.stdout
    assert not (tmp_path / "mosquitto.pid").exists()


@pytest.mark.parametrize("service", ["mosquitto", "kafka"])
def test_start_refuses_a_port_taken_by_another_process(tmp_path: Path, service: str) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = str(listener.getsockname()[1])
        env = {
            "MQFERRY_DEV_DIR": str(tmp_path),
            "MQFERRY_MQTT_PORT": port,
            "MQFERRY_KAFKA_PORT": port,
        }

        proc = run_services("start", service, env=env)

    assert proc.returncode != 0
    assert f"port 127.0.0.1:{port} is taken by another process" in proc.stderr
    assert not (tmp_path / f"{service}.pid").exists()

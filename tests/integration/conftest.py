"""Fixtures for tests against a real Apache Kafka and a real Mosquitto.

The services are the development services of ``scripts/services.sh``. When the environment names
reachable ones (``MQFERRY_KAFKA_BOOTSTRAP``, ``MQFERRY_MQTT_HOST``, ``MQFERRY_MQTT_PORT``, as
``scripts/test.sh`` exports them), the tests use those; otherwise the session starts them, and at
its end stops only what it started itself.

Besides the addresses, the fixtures offer independent witnesses: command-line clients that share no
code with mqferry (``kcat`` for Kafka, ``mosquitto_pub``/``mosquitto_sub`` for MQTT), so that a test
checks mqferry's effect as any other client would see it.

Every test under this directory is marked ``integration``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_SCRIPT = REPO_ROOT / "scripts" / "services.sh"
_HERE = Path(__file__).resolve().parent
_SERVICES = ("kafka", "mosquitto")
_ENV_NAMES = ("MQFERRY_KAFKA_BOOTSTRAP", "MQFERRY_MQTT_HOST", "MQFERRY_MQTT_PORT")
# A topic name may hold letters, digits, '.', '_' and '-', and at most 249 characters.
_TOPIC_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]+")

Headers = Mapping[str, str] | Sequence[tuple[str, str]]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: uses the real Kafka and Mosquitto of scripts/services.sh (started if absent)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Hooks in a conftest see every collected item, not only this directory's.
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


# ------------------------------------------------------------------------------------- services


@dataclass(frozen=True)
class MqttBroker:
    """Address of the MQTT broker under test."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Services:
    """Addresses of the running services, and which of them this test session started."""

    kafka_bootstrap: str
    mqtt: MqttBroker
    started: tuple[str, ...]


def _reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _services_sh(*args: str, timeout: float = 300) -> str:
    """Runs scripts/services.sh and returns its stdout; on failure, fails with its output."""
    proc = subprocess.run(
        ["bash", str(SERVICES_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"scripts/services.sh {' '.join(args)} exited with {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}",
            pytrace=False,
        )
    return proc.stdout


def _from_environment() -> Services | None:
    bootstrap = os.environ.get("MQFERRY_KAFKA_BOOTSTRAP")
    mqtt_port = os.environ.get("MQFERRY_MQTT_PORT")
    if not bootstrap or not mqtt_port:
        return None
    mqtt = MqttBroker(os.environ.get("MQFERRY_MQTT_HOST", "127.0.0.1"), int(mqtt_port))
    first = bootstrap.split(",")[0]
    if _reachable(*_split_host_port(first)) and _reachable(mqtt.host, mqtt.port):
        return Services(bootstrap, mqtt, started=())
    return None


@pytest.fixture(scope="session")
def dev_services() -> Iterator[Services]:
    """The running Kafka and Mosquitto; starts them with scripts/services.sh if needed.

    Only services that this fixture started are stopped at the end of the session, and only
    through the pid files of scripts/services.sh.
    """
    found = _from_environment()
    if found is not None:
        yield found
        return
    status = subprocess.run(
        ["bash", str(SERVICES_SCRIPT), "status"], capture_output=True, text=True, check=False
    ).stdout
    started = tuple(s for s in _SERVICES if f"{s}: running" not in status)
    _services_sh("install")
    _services_sh("start")
    env = dict(line.split("=", 1) for line in _services_sh("env").splitlines() if "=" in line)
    services = Services(
        env["MQFERRY_KAFKA_BOOTSTRAP"],
        MqttBroker(env["MQFERRY_MQTT_HOST"], int(env["MQFERRY_MQTT_PORT"])),
        started=started,
    )
    # Code under test that reads the environment must see the same services.
    saved = {name: os.environ.get(name) for name in _ENV_NAMES}
    os.environ.update({name: env[name] for name in _ENV_NAMES})
    try:
        yield services
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if started:
            _services_sh("stop", *started)


@pytest.fixture(scope="session")
def kafka_bootstrap(dev_services: Services) -> str:
    """Kafka bootstrap servers, e.g. ``127.0.0.1:9092``."""
    return dev_services.kafka_bootstrap


@pytest.fixture(scope="session")
def mqtt_broker(dev_services: Services) -> MqttBroker:
    """The MQTT broker's host and port."""
    return dev_services.mqtt


# ------------------------------------------------------------------------------------- topics


def _run_in_thread(coro_fn: Callable[[], Any]) -> Any:
    """Runs a coroutine function to completion on a private event loop in another thread.

    The topic factory is synchronous, yet async tests call it while their own loop runs, where
    ``asyncio.run`` is not allowed.
    """
    result: list[Any] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro_fn()))
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name="mqferry-test-admin")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0] if result else None


async def _create_topic(bootstrap: str, name: str, partitions: int, wait_s: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)],
            timeout_ms=int(wait_s * 1000),
        )
        for topic_error in response.topic_errors:
            topic, code = topic_error[0], topic_error[1]
            if code != 0:
                raise RuntimeError(f"creating Kafka topic {topic!r} failed: {topic_error}")
        # Wait until every partition has a leader, so that the first produce does not race it.
        deadline = time.monotonic() + wait_s
        while True:
            (described,) = await admin.describe_topics([name])
            leaders = [p["leader"] for p in described["partitions"]]
            if (
                described["error_code"] == 0
                and len(leaders) == partitions
                and all(leader >= 0 for leader in leaders)
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"Kafka topic {name!r} has no leaders after {wait_s}s")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def _delete_topics(bootstrap: str, names: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


@pytest.fixture
def new_topic(request: pytest.FixtureRequest, kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Factory: ``new_topic(partitions=1, prefix=None) -> str`` creates a uniquely named topic.

    The name starts with the test's name, so a broker's topic list shows which test made what.
    The topics are deleted after the test.
    """
    created: list[str] = []

    def factory(partitions: int = 1, *, prefix: str | None = None, timeout: float = 30) -> str:
        base = _TOPIC_UNSAFE.sub("-", prefix or f"mqferry-test-{request.node.name}").strip("-")
        name = f"{base[:200]}-{uuid.uuid4().hex[:8]}"
        _run_in_thread(lambda: _create_topic(kafka_bootstrap, name, partitions, timeout))
        created.append(name)
        return name

    yield factory
    if created:
        _run_in_thread(lambda: _delete_topics(kafka_bootstrap, created))


# ------------------------------------------------------------------------------------- kcat


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} not found: run scripts/services.sh install", pytrace=False)
    return path


def _kcat_record(raw: Mapping[str, Any]) -> dict[str, Any]:
    flat = raw.get("headers") or []
    return {
        "topic": raw["topic"],
        "partition": raw["partition"],
        "offset": raw["offset"],
        "ts": raw.get("ts"),
        "key": raw.get("key"),
        "payload": raw.get("payload"),
        # kcat prints headers as a flat list [name, value, name, value, ...]; names may repeat.
        "headers": list(zip(flat[0::2], flat[1::2], strict=True)),
    }


def kcat_consume(
    bootstrap: str, topic: str, count: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Reads a topic from the beginning with ``kcat -C -J -e -o beginning``, as an outside consumer.

    Reads again until the topic holds at least ``count`` records or ``timeout`` seconds passed, and
    returns every record read (more than ``count`` if there are more, fewer on time-out), ordered
    by partition and offset. Each record is a dict with ``topic``, ``partition``, ``offset``,
    ``ts`` (milliseconds), ``key`` and ``payload`` (str or None) and ``headers`` (a list of
    name/value pairs).
    """
    kcat = _require("kcat")
    deadline = time.monotonic() + timeout
    records: list[dict[str, Any]] = []
    while True:
        proc = subprocess.run(
            [kcat, "-C", "-b", bootstrap, "-t", topic, "-J", "-e", "-o", "beginning", "-q"],
            capture_output=True,
            text=True,
            timeout=max(timeout, 10.0),
            check=False,
        )
        if proc.returncode == 0:
            records = [_kcat_record(json.loads(line)) for line in proc.stdout.splitlines() if line]
            records.sort(key=lambda r: (r["partition"], r["offset"]))
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def kcat_produce(
    bootstrap: str,
    topic: str,
    values: Sequence[str | bytes],
    key: str | None = None,
    headers: Headers | None = None,
    *,
    partition: int | None = None,
) -> None:
    """Produces ``values`` to ``topic`` with ``kcat -P``, one record each, in order.

    ``key`` (if given) and ``headers`` apply to every record; ``partition`` pins the partition,
    otherwise kcat's partitioner chooses (by key when there is one).
    """
    kcat = _require("kcat")
    delimiter = b"\x1e"  # ASCII record separator: values may hold newlines
    encoded = [v.encode() if isinstance(v, str) else v for v in values]
    if any(delimiter in v for v in encoded):
        raise ValueError("kcat_produce values must not contain the byte 0x1e")
    args = [kcat, "-P", "-b", bootstrap, "-t", topic, "-D", delimiter.decode(), "-q"]
    if key is not None:
        args += ["-k", key]
    if partition is not None:
        args += ["-p", str(partition)]
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, value in pairs:
        args += ["-H", f"{name}={value}"]
    proc = subprocess.run(
        args, input=delimiter.join(encoded), capture_output=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"kcat -P failed ({proc.returncode}): {proc.stderr.decode()}")


@pytest.fixture(name="kcat_consume")
def kcat_consume_fixture(kafka_bootstrap: str) -> Callable[..., list[dict[str, Any]]]:
    """``kcat_consume(topic, count, timeout=30.0) -> list[dict]``; see :func:`kcat_consume`."""

    def consume(topic: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        return kcat_consume(kafka_bootstrap, topic, count, timeout)

    return consume


@pytest.fixture(name="kcat_produce")
def kcat_produce_fixture(kafka_bootstrap: str) -> Callable[..., None]:
    """``kcat_produce(topic, values, key=None, headers=None, *, partition=None)``.

    See :func:`kcat_produce`.
    """

    def produce(
        topic: str,
        values: Sequence[str | bytes],
        key: str | None = None,
        headers: Headers | None = None,
        *,
        partition: int | None = None,
    ) -> None:
        kcat_produce(kafka_bootstrap, topic, values, key, headers, partition=partition)

    return produce


# ------------------------------------------------------------------------------------- mosquitto


@dataclass(frozen=True)
class MqttMessage:
    """One message as ``mosquitto_sub`` received it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    #: MQTT 5 properties other than user properties, as mosquitto_sub names them
    #: (``content-type``, ``response-topic``, ``correlation-data``, ...).
    properties: dict[str, Any] = field(default_factory=dict)
    #: MQTT 5 user properties in the order received; names may repeat.
    user_properties: list[tuple[str, str]] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.payload.decode()

    @property
    def line(self) -> str:
        """The message as ``mosquitto_sub -v`` prints it: ``topic payload``."""
        return f"{self.topic} {self.payload.decode(errors='replace')}"


def _parse_sub_line(line: str) -> MqttMessage:
    # The format is "%x\t%j": the payload in hex (binary safe; %j cuts a payload at a NUL byte),
    # then the JSON envelope, parsed as pairs since user properties may repeat a name.
    hex_payload, _, envelope = line.partition("\t")
    pairs = json.loads(envelope, object_pairs_hook=list)
    top = dict(pairs)
    properties = dict(top.get("properties") or [])
    user = [(str(k), str(v)) for k, v in properties.pop("user-properties", [])]
    return MqttMessage(
        topic=top["topic"],
        payload=bytes.fromhex(hex_payload),
        qos=int(top["qos"]),
        retain=bool(top["retain"]),
        properties=properties,
        user_properties=user,
    )


#: Topics for the subscriber's readiness check; messages on them never count as received.
_SYNC_PREFIX = "mqferry-test-sync/"


def _topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching ('+' one level, '#' the rest); shared subscriptions unwrapped."""
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    levels, parts = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(levels):
        if level == "#":
            return True
        if i >= len(parts) or (level != "+" and level != parts[i]):
            return False
    return len(levels) == len(parts)


class MosquittoSub:
    """A running ``mosquitto_sub``; see the ``mosquitto_sub`` fixture."""

    def __init__(self, topics: Sequence[str], count: int, sync_topic: str) -> None:
        self.topics = tuple(topics)
        self.count = count
        self._sync_topic = sync_topic
        self._synced = False
        self._eof = False
        self._messages: list[MqttMessage] = []
        self._stderr: list[str] = []
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            if not line:
                continue
            message = _parse_sub_line(line)
            with self._cond:
                if message.topic == self._sync_topic:
                    self._synced = True
                elif not message.topic.startswith(_SYNC_PREFIX):
                    # Other subscribers' sync messages reach a filter that covers the prefix.
                    self._messages.append(message)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:
                    return predicate()
                self._cond.wait(min(remaining, 0.2))
            return True

    @property
    def messages(self) -> list[MqttMessage]:
        """The messages received so far (a copy)."""
        with self._cond:
            return list(self._messages)

    @property
    def lines(self) -> list[str]:
        """The messages received so far, as ``mosquitto_sub -v`` prints them."""
        return [m.line for m in self.messages]

    def wait(self, timeout: float = 30.0) -> list[MqttMessage]:
        """Waits until ``count`` messages arrived, the process ended or ``timeout`` passed.

        Returns the first ``count`` messages received (fewer on time-out).
        """
        self._wait_for(lambda: len(self._messages) >= self.count, timeout)
        return self.messages[: self.count]


def _publish_args(
    broker: MqttBroker,
    topic: str,
    *,
    qos: int,
    retain: bool,
    props: Mapping[str, str | int] | None,
    user_properties: Headers | None,
    version: str,
    client_id: str | None,
) -> list[str]:
    args = [_require("mosquitto_pub"), "-h", broker.host, "-p", str(broker.port)]
    args += ["-V", version, "-t", topic, "-q", str(qos)]
    if retain:
        args.append("-r")
    if client_id is not None:
        args += ["-i", client_id]
    for name, value in (props or {}).items():
        args += ["-D", "publish", name, str(value)]
    pairs = (
        user_properties.items() if isinstance(user_properties, Mapping) else user_properties or ()
    )
    for name, value in pairs:
        args += ["-D", "publish", "user-property", name, value]
    return args


def mosquitto_pub(
    broker: MqttBroker,
    topic: str,
    message: str | bytes,
    qos: int = 1,
    *,
    retain: bool = False,
    props: Mapping[str, str | int] | None = None,
    user_properties: Headers | None = None,
    version: str = "5",
    client_id: str | None = None,
) -> None:
    """Publishes one message with ``mosquitto_pub`` and returns when the broker acknowledged it.

    ``props`` are MQTT 5 publish properties by mosquitto_pub's names (``content-type``,
    ``message-expiry-interval``, ``response-topic``, ``correlation-data``,
    ``payload-format-indicator``, ...); ``user_properties`` are name/value pairs.
    """
    args = _publish_args(
        broker,
        topic,
        qos=qos,
        retain=retain,
        props=props,
        user_properties=user_properties,
        version=version,
        client_id=client_id,
    )
    data = message.encode() if isinstance(message, str) else message
    # -s: the message is all of stdin, so any bytes (newlines, NUL) go through unchanged; but -s
    # refuses an empty stdin, and -n is how mosquitto_pub sends an empty message.
    args.append("-s" if data else "-n")
    proc = subprocess.run(args, input=data, capture_output=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"mosquitto_pub failed ({proc.returncode}): {proc.stderr.decode()}")


@contextmanager
def mosquitto_sub(
    broker: MqttBroker,
    topics: str | Sequence[str],
    count: int,
    *,
    qos: int = 1,
    version: str = "5",
    timeout: float = 60.0,
) -> Iterator[MosquittoSub]:
    """Runs ``mosquitto_sub -t TOPIC... -q QOS -C COUNT`` in the background.

    The subscription is in place when the ``with`` block starts: the subscriber also subscribes to a
    private topic (under ``mqferry-test-sync/``, which it never reports) that holds one retained
    message, and the block starts once that message arrived. On exit the process is ended if it is
    still running, and the retained message is cleared.
    """
    topics = [topics] if isinstance(topics, str) else list(topics)
    sync_topic = f"{_SYNC_PREFIX}{uuid.uuid4().hex}"
    mosquitto_pub(broker, sync_topic, b"sync", qos=1, retain=True)
    sub = MosquittoSub(topics, count, sync_topic)
    args = [_require("mosquitto_sub"), "-h", broker.host, "-p", str(broker.port), "-V", version]
    args += ["-q", str(qos), "-W", str(int(timeout)), "-F", "%x\t%j"]
    # -C: exit after the messages and the one retained sync message; but a filter that also
    # matches the sync topic gets that message more than once, so then the count is left to wait().
    if not any(_topic_matches(f, sync_topic) for f in topics):
        args += ["-C", str(count + 1)]
    for topic in [*topics, sync_topic]:
        args += ["-t", topic]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1
    )
    sub.proc = proc
    reader = threading.Thread(target=sub._read, args=(proc,), name="mosquitto_sub", daemon=True)
    reader.start()
    try:
        if not sub._wait_for(lambda: sub._synced, 15.0):
            proc.kill()
            _, stderr = proc.communicate(timeout=5)
            raise RuntimeError(f"mosquitto_sub did not subscribe in 15s: {stderr.strip()}")
        yield sub
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        reader.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        # Clear the retained sync message only now: subscribers get the clearing publish too.
        with suppress(RuntimeError, subprocess.TimeoutExpired):
            mosquitto_pub(broker, sync_topic, b"", qos=1, retain=True)


@pytest.fixture(name="mosquitto_pub")
def mosquitto_pub_fixture(mqtt_broker: MqttBroker) -> Callable[..., None]:
    """``mosquitto_pub(topic, message, qos=1, **options)``; see :func:`mosquitto_pub`."""

    def publish(topic: str, message: str | bytes, qos: int = 1, **kwargs: Any) -> None:
        mosquitto_pub(mqtt_broker, topic, message, qos, **kwargs)

    return publish


@pytest.fixture(name="mosquitto_sub")
def mosquitto_sub_fixture(
    mqtt_broker: MqttBroker,
) -> Callable[..., Any]:
    """``with mosquitto_sub(topics, count, *, qos=1, version="5", timeout=60.0) as sub:``.

    ``sub.wait(timeout)`` returns the :class:`MqttMessage` list; ``sub.lines`` the ``-v`` lines.
    """

    def subscribe(topics: str | Sequence[str], count: int, **kwargs: Any) -> Any:
        return mosquitto_sub(mqtt_broker, topics, count, **kwargs)

    return subscribe

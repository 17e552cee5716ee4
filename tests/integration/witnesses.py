"""Independent witnesses for integration tests: command-line clients sharing no code with mqferry.

``kcat`` reads and writes Kafka; ``mosquitto_pub`` and ``mosquitto_sub`` publish and subscribe on
MQTT, so a test checks mqferry's effect as any other client would see it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pytest

Headers = Mapping[str, str] | Sequence[tuple[str, str]]


@dataclass(frozen=True)
class MqttBroker:
    """Address of the MQTT broker under test."""

    host: str
    port: int
    #: Extra options for mosquitto_pub and mosquitto_sub (TLS files, user name and password).
    options: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


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
    bootstrap: str,
    topic: str,
    count: int,
    timeout: float = 30.0,
    *,
    options: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Reads a topic from the beginning with ``kcat -C -J -e -o beginning``, as an outside consumer.

    Reads again until the topic holds at least ``count`` records or ``timeout`` seconds passed, and
    returns every record read (more than ``count`` if there are more, fewer on time-out), ordered
    by partition and offset. Each record is a dict with ``topic``, ``partition``, ``offset``,
    ``ts`` (milliseconds), ``key`` and ``payload`` (str or None) and ``headers`` (a list of
    name/value pairs). ``options`` are extra kcat arguments (``-X security.protocol=SSL``, ...).
    """
    kcat = _require("kcat")
    deadline = time.monotonic() + timeout
    records: list[dict[str, Any]] = []
    while True:
        proc = subprocess.run(
            [kcat, "-C", "-b", bootstrap, "-t", topic, "-J", "-e", "-o", "beginning", "-q",
             *options],
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
    options: Sequence[str] = (),
) -> None:
    """Produces ``values`` to ``topic`` with ``kcat -P``, one record each, in order.

    ``key`` (if given) and ``headers`` apply to every record; ``partition`` pins the partition,
    otherwise kcat's partitioner chooses (by key when there is one). ``options`` are extra kcat
    arguments.
    """
    kcat = _require("kcat")
    delimiter = b"\x1e"  # ASCII record separator: values may hold newlines
    encoded = [v.encode() if isinstance(v, str) else v for v in values]
    if any(delimiter in v for v in encoded):
        raise ValueError("kcat_produce values must not contain the byte 0x1e")
    args = [kcat, "-P", "-b", bootstrap, "-t", topic, "-D", delimiter.decode(), "-q", *options]
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
    args = [_require("mosquitto_pub"), "-h", broker.host, "-p", str(broker.port), *broker.options]
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
    args = [_require("mosquitto_sub"), "-h", broker.host, "-p", str(broker.port), *broker.options]
    args += ["-V", version]
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


def wait_until(predicate: Callable[[], Any], timeout: float, step: float = 0.2) -> bool:
    """Poll ``predicate`` every ``step`` seconds until it holds or ``timeout`` passed; returns
    whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())

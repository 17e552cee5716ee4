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
import os
import re
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.witnesses import (
    Headers,
    MqttBroker,
    kcat_consume,
    kcat_produce,
    mosquitto_pub,
    mosquitto_sub,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES_SCRIPT = REPO_ROOT / "scripts" / "services.sh"
_HERE = Path(__file__).resolve().parent
_SERVICES = ("kafka", "mosquitto")
_ENV_NAMES = ("MQFERRY_KAFKA_BOOTSTRAP", "MQFERRY_MQTT_HOST", "MQFERRY_MQTT_PORT")
# A topic name may hold letters, digits, '.', '_' and '-', and at most 249 characters.
_TOPIC_UNSAFE = re.compile(r"[^a-zA-Z0-9._-]+")



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


# ------------------------------------------------------------------------------------- secured

#: What ``scripts/services.sh env`` prints for brokers started with the secured listeners.
_SECURED_NAMES = (
    "MQFERRY_MQTT_TLS_PORT", "MQFERRY_MQTT_MTLS_PORT", "MQFERRY_MQTT_USERNAME",
    "MQFERRY_MQTT_PASSWORD", "MQFERRY_KAFKA_SASL_SSL_BOOTSTRAP", "MQFERRY_KAFKA_SSL_BOOTSTRAP",
    "MQFERRY_KAFKA_PLAIN_USERNAME", "MQFERRY_KAFKA_PLAIN_PASSWORD",
    "MQFERRY_KAFKA_SCRAM_SHA_256_USERNAME", "MQFERRY_KAFKA_SCRAM_SHA_256_PASSWORD",
    "MQFERRY_KAFKA_SCRAM_SHA_512_USERNAME", "MQFERRY_KAFKA_SCRAM_SHA_512_PASSWORD",
    "MQFERRY_TLS_CA", "MQFERRY_TLS_CA_KEY", "MQFERRY_TLS_CLIENT_CERT", "MQFERRY_TLS_CLIENT_KEY",
    "MQFERRY_TLS_CLIENT_KEY_ENCRYPTED", "MQFERRY_TLS_CLIENT_KEY_PASSWORD",
)


@dataclass(frozen=True)
class SecuredServices:
    """The secured listeners of ``scripts/services.sh``, their files and their users.

    ``mqtt_password`` / ``mqtt_cert`` are the MQTT TLS listeners (password file; client
    certificates, whose CN is the user name) with options for mosquitto_pub/sub;
    ``kafka_sasl_ssl`` / ``kafka_ssl`` are the Kafka SASL_SSL and mTLS bootstrap addresses;
    ``kafka_users`` maps ``plain``, ``scram_sha_256`` and ``scram_sha_512`` to (user, password).
    """

    mqtt_password: MqttBroker
    mqtt_cert: MqttBroker
    mqtt_username: str
    mqtt_user_password: str
    kafka_sasl_ssl: str
    kafka_ssl: str
    kafka_users: dict[str, tuple[str, str]]
    ca: str
    ca_key: str
    client_cert: str
    client_key: str
    client_key_encrypted: str
    client_key_password: str

    def kcat_sasl_ssl(self) -> list[str]:
        """kcat options for the SASL_SSL listener.

        kcat authenticates with PLAIN: librdkafka before 2.6.1 (kcat 1.7 has 2.0.2) sends a
        SCRAM proof that Kafka 4 rejects (confluentinc/librdkafka#4895).
        """
        user, password = self.kafka_users["plain"]
        return ["-X", "security.protocol=SASL_SSL", "-X", "sasl.mechanisms=PLAIN",
                "-X", f"sasl.username={user}", "-X", f"sasl.password={password}",
                "-X", f"ssl.ca.location={self.ca}"]

    def kcat_ssl(self) -> list[str]:
        """kcat options for the mTLS listener."""
        return ["-X", "security.protocol=SSL", "-X", f"ssl.ca.location={self.ca}",
                "-X", f"ssl.certificate.location={self.client_cert}",
                "-X", f"ssl.key.location={self.client_key}"]


@pytest.fixture(scope="session")
def secured(dev_services: Services) -> SecuredServices:
    """The secured listeners; the tests using them skip only when none are configured.

    The variables come from the environment (``scripts/test.sh`` exports them) or else from
    ``scripts/services.sh env``, which names them only for brokers started with them.
    """
    env = {name: os.environ[name] for name in _SECURED_NAMES if name in os.environ}
    if len(env) < len(_SECURED_NAMES):
        printed = _services_sh("env")
        env.update(dict(line.split("=", 1) for line in printed.splitlines() if "=" in line))
    missing = [name for name in _SECURED_NAMES if name not in env]
    if missing:
        pytest.skip(f"the secured listeners are not configured (scripts/services.sh env names "
                    f"no {missing[0]} and {len(missing) - 1} more): brokers started by an older "
                    f"scripts/services.sh; restart them with its stop and start")
    host = dev_services.mqtt.host
    ca = env["MQFERRY_TLS_CA"]
    user, password = env["MQFERRY_MQTT_USERNAME"], env["MQFERRY_MQTT_PASSWORD"]
    mqtt_password = MqttBroker(host, int(env["MQFERRY_MQTT_TLS_PORT"]),
                               ("--cafile", ca, "-u", user, "-P", password))
    mqtt_cert = MqttBroker(host, int(env["MQFERRY_MQTT_MTLS_PORT"]),
                           ("--cafile", ca, "--cert", env["MQFERRY_TLS_CLIENT_CERT"],
                            "--key", env["MQFERRY_TLS_CLIENT_KEY"]))
    found = SecuredServices(
        mqtt_password=mqtt_password,
        mqtt_cert=mqtt_cert,
        mqtt_username=user,
        mqtt_user_password=password,
        kafka_sasl_ssl=env["MQFERRY_KAFKA_SASL_SSL_BOOTSTRAP"],
        kafka_ssl=env["MQFERRY_KAFKA_SSL_BOOTSTRAP"],
        kafka_users={
            mech: (env[f"MQFERRY_KAFKA_{var}_USERNAME"], env[f"MQFERRY_KAFKA_{var}_PASSWORD"])
            for mech, var in (("plain", "PLAIN"), ("scram_sha_256", "SCRAM_SHA_256"),
                              ("scram_sha_512", "SCRAM_SHA_512"))
        },
        ca=ca,
        ca_key=env["MQFERRY_TLS_CA_KEY"],
        client_cert=env["MQFERRY_TLS_CLIENT_CERT"],
        client_key=env["MQFERRY_TLS_CLIENT_KEY"],
        client_key_encrypted=env["MQFERRY_TLS_CLIENT_KEY_ENCRYPTED"],
        client_key_password=env["MQFERRY_TLS_CLIENT_KEY_PASSWORD"],
    )
    # Configured but not listening is a failure, not a skip: CI must run these tests.
    for address in (found.kafka_sasl_ssl, found.kafka_ssl, str(mqtt_password), str(mqtt_cert)):
        if not _reachable(*_split_host_port(address)):
            pytest.fail(f"secured listener {address} is configured but not reachable",
                        pytrace=False)
    return found


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






#: Topics for the subscriber's readiness check; messages on them never count as received.












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

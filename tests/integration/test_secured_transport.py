"""The quick start over secured listeners, and what a bad certificate or password looks like.

The brokers are those of ``scripts/services.sh`` with their secured listeners: Mosquitto over
TLS with a password or a client certificate, Kafka over SASL_SSL (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512) or SSL with a client certificate. ``mqferry run`` runs as a process; kcat and
mosquitto_pub/mosquitto_sub are the witnesses, over the same secured listeners.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import SecuredServices
from tests.integration.mqferry_process import MqferryProcess, api_key, free_port
from tests.integration.test_quickstart import quickstart_config
from tests.integration.witnesses import (
    MqttBroker,
    kcat_consume,
    kcat_produce,
    mosquitto_pub,
    mosquitto_sub,
)

pytestmark = pytest.mark.integration

_VERIFY = {"enable": True, "verify": "verify_peer"}
#: A password no listener accepts.
WRONG = uuid.uuid4().hex


# ------------------------------------------------------------------------------------- configs


def mqtt_section(secured: SecuredServices, auth: str, clientid: str) -> dict[str, Any]:
    """The ``mqtt`` section for the TLS listener with a password, or with a client certificate.

    The client certificate's key is the encrypted copy, so ``ssl.password`` is used too.
    """
    tls = {**_VERIFY, "cacertfile": secured.ca}
    if auth == "password":
        broker = secured.mqtt_password
        return {"server": f"{broker.host}:{broker.port}", "clientid": clientid,
                "username": secured.mqtt_username, "password": secured.mqtt_user_password,
                "ssl": tls}
    broker = secured.mqtt_cert
    return {"server": f"{broker.host}:{broker.port}", "clientid": clientid,
            "ssl": {**tls, "certfile": secured.client_cert,
                    "keyfile": secured.client_key_encrypted,
                    "password": secured.client_key_password}}


def kafka_connector(secured: SecuredServices, auth: str) -> dict[str, Any]:
    """A Kafka connector: SASL_SSL with ``auth`` as the mechanism, or ``mtls``."""
    tls = {**_VERIFY, "cacertfile": secured.ca}
    if auth == "mtls":
        return {"bootstrap_hosts": secured.kafka_ssl,
                "ssl": {**tls, "certfile": secured.client_cert,
                        "keyfile": secured.client_key_encrypted,
                        "password": secured.client_key_password}}
    user, password = secured.kafka_users[auth]
    return {"bootstrap_hosts": secured.kafka_sasl_ssl, "ssl": tls,
            "authentication": {"mechanism": auth, "username": user, "password": password}}


# ------------------------------------------------------------------------------------- quick start


@pytest.mark.parametrize(("mqtt_auth", "kafka_auth"), [
    ("password", "scram_sha_256"),
    ("certificate", "scram_sha_512"),
    ("password", "plain"),
    ("certificate", "mtls"),
])
def test_quick_start_both_ways_over_tls(secured, mqtt_broker, new_topic, tmp_path, mqtt_auth,
                                        kafka_auth):
    prefix = f"sec-{uuid.uuid4().hex[:8]}"
    topic_in, topic_out = new_topic(), new_topic()
    cfg = quickstart_config("unused:9092", mqtt_broker, topic_in, topic_out, prefix, "unused")
    cfg["mqtt"] = mqtt_section(secured, mqtt_auth, f"mqferry-{prefix}")
    connector = kafka_connector(secured, kafka_auth)
    cfg["connectors"] = {"kafka_producer": {"my-kafka": connector},
                         "kafka_consumer": {"my-kafka-consumer": connector}}
    witness = secured.mqtt_password if mqtt_auth == "password" else secured.mqtt_cert
    bootstrap = secured.kafka_ssl if kafka_auth == "mtls" else secured.kafka_sasl_ssl
    kcat_options = secured.kcat_ssl() if kafka_auth == "mtls" else secured.kcat_sasl_ssl()

    app = MqferryProcess(cfg, tmp_path).start()
    try:
        app.wait_ready(actions=1, sources=1)
        # MQTT -> Kafka
        mosquitto_pub(witness, f"{prefix}/t/1", '{ "msg": "Hello Kafka" }', qos=1,
                      user_properties=[("clientid", "emqx_c")])
        records = kcat_consume(bootstrap, topic_in, 1, options=kcat_options)
        assert len(records) == 1, app.log
        value = json.loads(records[0]["payload"])
        assert (value["payload"], value["topic"]) == ('{ "msg": "Hello Kafka" }', f"{prefix}/t/1")
        assert records[0]["key"] == "emqx_c"
        # Kafka -> MQTT
        with mosquitto_sub(witness, f"{prefix}/t/1", 1) as sub:
            kcat_produce(bootstrap, topic_out, ['{"msg": "Hello EMQX"}'], key="key",
                         options=kcat_options)
            messages = sub.wait(30)
        assert len(messages) == 1, app.log
        got = json.loads(messages[0].payload)
        assert (got["value"], got["key"], got["topic"]) == ('{"msg": "Hello EMQX"}', "key",
                                                            topic_out)
        assert app.terminate() == 0
    finally:
        if app.proc is not None and app.proc.poll() is None:
            app.kill()


def test_witnesses_are_refused_without_credentials(secured):
    """The secured listeners really are secured: no password, no certificate, no entry."""
    anonymous = MqttBroker(secured.mqtt_password.host, secured.mqtt_password.port,
                           ("--cafile", secured.ca))
    with pytest.raises(RuntimeError, match="mosquitto_pub failed"):
        mosquitto_pub(anonymous, "sec/anonymous", "x")
    no_cert = MqttBroker(secured.mqtt_cert.host, secured.mqtt_cert.port, ("--cafile", secured.ca))
    with pytest.raises(RuntimeError, match="mosquitto_pub failed"):
        mosquitto_pub(no_cert, "sec/anonymous", "x")
    proc = subprocess.run(["kcat", "-L", "-b", secured.kafka_ssl, "-m", "5",
                           "-X", "security.protocol=SSL", "-X", f"ssl.ca.location={secured.ca}"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0, proc.stdout


# ------------------------------------------------------------------------------------- failures


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_ca(directory: Path) -> tuple[Path, Path]:
    """A CA nobody trusts: its certificate and key."""
    cert, key = directory / "other-ca.pem", directory / "other-ca.key"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=another CA")
    return cert, key


def make_server_cert(directory: Path, name: str, ca: str, ca_key: str, san: str,
                     days: int) -> tuple[Path, Path]:
    """A server certificate signed by ``ca``; ``days=-1`` makes one that expired yesterday."""
    cert, key, csr = (directory / f"{name}.{ext}" for ext in ("pem", "key", "csr"))
    ext = directory / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
            "-CAserial", directory / "ca.srl", "-days", str(days), "-extfile", ext, "-out", cert)
    return cert, key


class TlsServer:
    """A TLS listener that shows a given certificate and closes each connection after it.

    It stands for a broker whose certificate is wrong: the client's checks fail during the
    handshake, before any MQTT packet.
    """

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.handshakes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tls-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.handshakes += 1
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True):
                    pass
            except OSError:
                pass  # the client refused the certificate: what the test wants
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


#: connector id -> (what /api/v5/status must say, what the log must say at least twice: the
#: connector kept retrying). Kafka's connector reports "Unable to bootstrap"; its client logs
#: the reason of each attempt.
FAILURES = {
    "mqtt": ("login: the broker refused the", "login: the broker refused the"),
    "mqtt:bad_ca": ("TLS: the broker's certificate is not signed by a CA in ssl.cacertfile",
                    "is not signed by a CA in ssl.cacertfile"),
    "mqtt:hostname": ("TLS: the broker's certificate does not hold the",
                      "certificate does not hold the"),
    "mqtt:expired": ("TLS: the broker's certificate has expired", "certificate has expired"),
    "mqtt:no_cert": ("TLS: the broker requires a client certificate", "requires a client cert"),
    # the status names the file, not why (an API client must not tell files apart): the log does
    "mqtt:key_password": ("ssl.certfile: cannot load the client certificate and key",
                          "cannot decrypt the key"),
    "kafka_producer:scram_password": ("", "invalid credentials with SASL mechanism SCRAM-SHA-256"),
    "kafka_producer:plain_password": ("", "Invalid username or password"),
    # Kafka sends its chain with the CA, which the other CA does not know.
    "kafka_producer:bad_ca": ("", "self-signed certificate in certificate chain"),
}


@pytest.fixture(scope="module")
def failing(secured: SecuredServices, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[dict[str, Any]]:
    """One mqferry whose MQTT session and connectors each meet a different failure."""
    tmp = tmp_path_factory.mktemp("failing")
    other_ca, _ = make_ca(tmp)
    mismatch = TlsServer(*make_server_cert(tmp, "mismatch", secured.ca, secured.ca_key,
                                           "DNS:other.example", 1))
    expired = TlsServer(*make_server_cert(tmp, "expired", secured.ca, secured.ca_key,
                                          "IP:127.0.0.1,DNS:localhost", -1))
    p = f"fail-{uuid.uuid4().hex[:6]}"
    fast = {"reconnect_min": "200ms", "reconnect_max": "1s", "connect_timeout": "5s"}

    def mqtt(auth: str, name: str, **changes: Any) -> dict[str, Any]:
        section = {**mqtt_section(secured, auth, f"{p}-{name}"), **fast}
        section["ssl"] = {**section["ssl"], **changes.pop("ssl", {})}
        return {**section, **changes}

    def kafka(auth: str, **ssl_changes: Any) -> dict[str, Any]:
        section = kafka_connector(secured, auth)
        section["ssl"] = {**section["ssl"], **ssl_changes}
        section["resource_opts"] = {"health_check_interval": "1s"}
        return section

    wrong_scram = kafka("scram_sha_256")
    wrong_scram["authentication"]["password"] = WRONG
    wrong_plain = kafka("plain")
    wrong_plain["authentication"]["password"] = WRONG
    port = free_port()
    cfg = {
        "mqtt": mqtt("password", "main", password=WRONG),
        "api": {"listen": f"127.0.0.1:{port}"},
        "data_dir": str(tmp / "data"),
        # a repeated failure is logged at DEBUG (one WARNING per change of reason): show the
        # repeats, which prove the retries
        "log": {"levels": {"mqferry._mqtt.client": "debug", "mqferry_kafka.connector": "debug"}},
        "connectors": {
            "mqtt": {
                "bad_ca": mqtt("password", "bad-ca", ssl={"cacertfile": str(other_ca)}),
                "hostname": mqtt("password", "hostname", server=f"127.0.0.1:{mismatch.port}"),
                "expired": mqtt("password", "expired", server=f"127.0.0.1:{expired.port}"),
                "no_cert": mqtt("certificate", "no-cert",
                                ssl={"certfile": None, "keyfile": None, "password": None}),
                "key_password": mqtt("certificate", "key-pw", ssl={"password": WRONG}),
            },
            "kafka_producer": {
                "scram_password": wrong_scram,
                "plain_password": wrong_plain,
                "bad_ca": kafka("scram_sha_512", cacertfile=str(other_ca)),
            },
        },
    }
    app = MqferryProcess(cfg, tmp)
    auth = api_key(app.config_path)
    app.start()
    try:
        yield {"app": app, "url": f"http://127.0.0.1:{port}/api/v5", "auth": auth,
               "servers": (mismatch, expired)}
    finally:
        if app.proc is not None and app.proc.poll() is None:
            app.kill()
        mismatch.close()
        expired.close()


def _status_of(view: dict[str, Any], cid: str) -> dict[str, Any]:
    if cid == "mqtt":
        return dict(view["mqtt"])
    return next(c for c in view["connectors"] if c["id"] == cid)


@pytest.mark.parametrize("cid", list(FAILURES))
def test_a_bad_certificate_or_password_is_named_and_retried(failing, cid):
    app: MqferryProcess = failing["app"]
    in_status, in_log = FAILURES[cid]
    app.wait_for_log(in_log, timeout=60, count=2)  # the same failure again: it keeps retrying
    deadline = time.monotonic() + 30
    while True:
        try:
            view = httpx.get(f"{failing['url']}/status", auth=failing["auth"], timeout=10).json()
            status = _status_of(view, cid)
            if status["status"] == "connecting" and in_status in status.get("status_reason", ""):
                break
        except httpx.TransportError:
            status = {"api": "not up yet"}
        assert time.monotonic() < deadline, (status, app.log)
        time.sleep(0.5)
    assert view["ready"] is False
    assert app.proc is not None and app.proc.poll() is None, app.log  # still running


def test_the_failing_listeners_saw_handshakes(failing):
    """The certificate cases fail at our TLS servers, not somewhere before them."""
    failing["app"].wait_for_log("certificate has expired", timeout=60)
    mismatch, expired = failing["servers"]
    assert mismatch.handshakes >= 1 and expired.handshakes >= 1

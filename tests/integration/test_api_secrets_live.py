"""Against a running ``mqferry``: a client of the API cannot make it read a host file and send
it to a listener of the client's choosing, nor send the stored password to a new host.

The listener is the test's own TCP socket: it records every connection and byte it receives.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from mqferry._config import REDACTED
from tests.integration.mqferry_process import MqferryProcess

pytestmark = pytest.mark.integration


class Listener:
    """Accepts connections on 127.0.0.1 and keeps what each one sends."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        data = b""
        conn.settimeout(3)
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except OSError:
            pass
        finally:
            conn.close()
            self.received.append(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def instance(mqtt_broker, tmp_path):
    port = _free_port()
    proc = MqferryProcess({
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}",
                 "clientid": f"secrets-{uuid.uuid4().hex[:8]}"},
        "api": {"listen": f"127.0.0.1:{port}"}, "data_dir": str(tmp_path / "data")},
        tmp_path)
    exe = Path(sys.executable).with_name("mqferry")
    out = subprocess.run([str(exe), "api-key", "create", "-c", str(proc.config_path),
                          "--name", "t"], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    lines = dict(line.split(":", 1) for line in out.splitlines())
    auth = (lines["api_key"].strip(), lines["api_secret"].strip())
    proc.start()
    proc.wait_for_log("API listening")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v5", auth=auth,
                      timeout=60) as client:
        yield client, proc
    proc.terminate()


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def _kafka(port: int, password: str) -> dict[str, object]:
    return {"type": "kafka_producer", "name": "probe", "bootstrap_hosts": f"127.0.0.1:{port}",
            "connect_timeout": "1s",
            "authentication": {"mechanism": "plain", "username": "u", "password": password}}


def test_a_host_file_as_a_kafka_password_never_reaches_the_callers_listener(instance,
                                                                            listener):
    client, proc = instance
    passwd = Path("/etc/passwd").read_text()
    # The witness works: a probe with a literal password does reach the listener.
    r = client.post("/connectors_probe", json=_kafka(listener.port, "literal-canary"))
    assert r.status_code == 400 and r.json()["code"] == "TEST_FAILED", r.text
    deadline = time.monotonic() + 10
    while not listener.received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert listener.received, "the probe never connected to the listener"
    reached = len(listener.received)

    for ref in ("file:///etc/passwd", "${HOME}"):
        probe = client.post("/connectors_probe", json=_kafka(listener.port, ref))
        assert probe.status_code == 400, probe.text
        assert "authentication" in probe.json()["message"]
        assert "password" in probe.json()["message"]
        assert "reference" in probe.json()["message"]
        created = client.post("/connectors", json={**_kafka(listener.port, ref), "name": "k"})
        assert created.status_code == 400, created.text
    time.sleep(3)  # what a probe would have sent by now
    assert len(listener.received) == reached
    sent = b"".join(listener.received).decode("latin-1")
    assert not any(line and line in sent for line in passwd.splitlines())
    assert client.get("/connectors").json() == []
    assert "root:" not in proc.log


def test_the_stored_password_does_not_follow_a_new_host(instance, listener):
    client, _ = instance
    closed = _free_port()
    stored = f"stored-{uuid.uuid4().hex}"
    created = client.post("/connectors", json={**_kafka(closed, stored), "name": "k",
                                               "enable": False})
    assert created.status_code == 201, created.text
    kept = created.json()
    assert kept["authentication"]["password"] == REDACTED
    body = {k: v for k, v in kept.items() if k in ("bootstrap_hosts", "connect_timeout",
                                                   "authentication", "enable")}
    moved = client.put("/connectors/kafka_producer:k",
                       json={**body, "bootstrap_hosts": f"127.0.0.1:{listener.port}"})
    assert moved.status_code == 400, moved.text
    assert "send the password again" in moved.json()["message"]
    probe = client.post("/connectors_probe", json={**body, "type": "kafka_producer", "name": "k",
                                                   "bootstrap_hosts":
                                                   f"127.0.0.1:{listener.port}"})
    assert probe.status_code == 400, probe.text
    assert "send the password again" in probe.json()["message"]
    time.sleep(3)
    assert listener.received == []
    shown = client.get("/connectors/kafka_producer:k").json()
    assert shown["bootstrap_hosts"] == f"127.0.0.1:{closed}"

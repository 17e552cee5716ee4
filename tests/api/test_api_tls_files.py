"""TLS files named through the API: only inside ``api.ssl_file_dirs``, a stored client certificate
stays with its hosts, and no answer tells which host files exist."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from mqferry._api.errors import ApiError
from mqferry._api.redact import refuse_files
from mqferry._config.tlsfiles import in_dirs
from tests.api.conftest import BASE_CONFIG
from tests.api.helpers import on_disk

KAFKA = {"bootstrap_hosts": "127.0.0.1:1", "connect_timeout": "1s",
         "metadata_request_timeout": "1s"}
#: The operator's client certificate, named in the config file, outside the allowed directory.
OPERATOR_CERT = "/etc/mqferry/operator-client.pem"
OPERATOR_KEY = "/etc/mqferry/operator-client.key"


@pytest.fixture
def allowed(tmp_path):
    d = tmp_path / "allowed-certs"
    d.mkdir()
    (d / "not-a-cert.pem").write_text("not a certificate\n")
    (d / "a-directory").mkdir()
    unreadable = d / "unreadable.pem"
    unreadable.write_text("secret\n")
    unreadable.chmod(0)
    return d


@pytest.fixture
def config_file(tmp_path, allowed):
    data = {**BASE_CONFIG,
            "api": {"ssl_file_dirs": [str(allowed)]},
            "connectors": {**BASE_CONFIG["connectors"], "kafka_producer": {"k": {
                **KAFKA, "ssl": {"enable": True, "certfile": OPERATOR_CERT,
                                 "keyfile": OPERATOR_KEY}}}},
            "mqtt": {"server": "broker:8883", "ssl": {"enable": True, "certfile": OPERATOR_CERT,
                                                      "keyfile": OPERATOR_KEY}}}
    path = tmp_path / "mqferry.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _anonymous(text: str, path: str) -> str:
    return text.replace(path, "<path>")


@pytest.mark.parametrize("path", ["/etc/passwd", "/nonexistent/ca.pem", "/root", "/etc",
                                  "relative/ca.pem", "/etc/../etc/passwd"])
async def test_a_file_outside_the_allowed_directories_is_refused_unread(client, controller,
                                                                         path):
    body = {"type": "kafka_producer", "name": "t1", **KAFKA,
            "ssl": {"enable": True, "verify": "verify_peer", "cacertfile": path}}
    probe = await client.post("/connectors_probe", json=body)
    create = await client.post("/connectors", json=body)
    for r in (probe, create):
        assert r.status_code == 400, r.text
        assert r.json()["fields"] == ["connectors.kafka_producer.t1.ssl.cacertfile"]
        assert "api.ssl_file_dirs" in r.json()["message"]
    # the same answer whatever the path is
    assert _anonymous(probe.text, path) == _anonymous(
        (await client.post("/connectors_probe", json={
            **body, "ssl": {**body["ssl"], "cacertfile": "/x"}})).text, "/x")
    assert "kafka_producer:t1" not in controller.app.connectors


async def test_probe_answers_alike_for_any_unusable_file_in_the_allowed_directory(
        client, allowed, caplog):
    answers = {}
    for name in ("missing.pem", "a-directory", "not-a-cert.pem", "unreadable.pem"):
        path = str(allowed / name)
        for field in ("cacertfile", "certfile"):
            r = await client.post("/connectors_probe", json={
                "type": "kafka_producer", "name": "t1", **KAFKA,
                "ssl": {"enable": True, "verify": "verify_peer", field: path}})
            assert r.status_code == 400, r.text
            assert r.json()["code"] == "TEST_FAILED"
            assert "the reason is in the mqferry log" in r.json()["message"]
            answers.setdefault(field, set()).add(_anonymous(r.json()["message"], path))
    assert all(len(texts) == 1 for texts in answers.values()), answers
    # the operator reads why in the log
    assert "No such file or directory" in caplog.text
    assert "no PEM certificate" in caplog.text


async def test_status_reason_answers_alike_for_any_unusable_file(client, allowed):
    reasons = set()
    for i, name in enumerate(("missing.pem", "a-directory", "not-a-cert.pem",
                              "unreadable.pem")):
        path = str(allowed / name)
        r = await client.post("/connectors", json={
            "type": "kafka_producer", "name": f"f{i}", **KAFKA,
            "ssl": {"enable": True, "verify": "verify_peer", "cacertfile": path}})
        assert r.status_code == 201, r.text
        for _ in range(100):
            reason = (await client.get(f"/connectors/kafka_producer:f{i}")).json()[
                "status_reason"]
            if reason:
                break
            await asyncio.sleep(0.05)
        assert reason and "the reason is in the mqferry log" in reason, reason
        reasons.add(_anonymous(reason, path))
    assert len(reasons) == 1, reasons


async def test_the_stored_client_certificate_stays_with_its_hosts(client, controller,
                                                                   config_file):
    kept = {"enable": True, "certfile": OPERATOR_CERT, "keyfile": OPERATOR_KEY}
    moved = await client.put("/connectors/kafka_producer:k",
                             json={**KAFKA, "bootstrap_hosts": "evil:9093", "ssl": kept})
    assert moved.status_code == 400, moved.text
    assert "stays with its hosts" in moved.json()["message"]
    assert moved.json()["fields"] == ["connectors.kafka_producer.k.ssl.certfile",
                                      "connectors.kafka_producer.k.ssl.keyfile"]
    probe = await client.post("/connectors_probe", json={
        "type": "kafka_producer", "name": "k", **KAFKA, "bootstrap_hosts": "evil:9093",
        "ssl": kept})
    assert probe.status_code == 400, probe.text
    # another connector cannot name the operator's files either
    other = await client.post("/connectors", json={
        "type": "kafka_producer", "name": "k2", **KAFKA, "bootstrap_hosts": "evil:9093",
        "ssl": kept})
    assert other.status_code == 400, other.text
    assert "api.ssl_file_dirs" in other.json()["message"]
    # the same hosts: the stored files are kept
    same = await client.put("/connectors/kafka_producer:k",
                            json={**KAFKA, "description": "kept", "ssl": kept})
    assert same.status_code == 200, same.text
    saved = (await on_disk(controller, config_file))["connectors"]["kafka_producer"]["k"]
    assert saved["ssl"]["certfile"] == OPERATOR_CERT
    assert saved["bootstrap_hosts"] == "127.0.0.1:1"


async def test_the_mqtt_section_keeps_the_same_rules(client, allowed):
    section = (await client.get("/mqtt")).json()["config"]
    moved = await client.put("/mqtt", json={**section, "server": "evil:8883"})
    assert moved.status_code == 400, moved.text
    assert "stays with its hosts" in moved.json()["message"]
    foreign = await client.put("/mqtt", json={
        **section, "ssl": {**section["ssl"], "cacertfile": "/etc/passwd"}})
    assert foreign.status_code == 400, foreign.text
    assert foreign.json()["fields"] == ["mqtt.ssl.cacertfile"]
    inside = await client.put("/mqtt", json={
        **section, "ssl": {**section["ssl"], "cacertfile": str(allowed / "ca.pem")}})
    assert inside.status_code == 200, inside.text


def test_allowed_files_and_what_escapes(tmp_path, allowed):
    (allowed / "escape.pem").symlink_to("/etc/passwd")
    dirs = [str(allowed)]
    assert in_dirs(str(allowed / "ca.pem"), dirs)
    assert in_dirs(str(allowed / "sub" / "ca.pem"), dirs)
    assert not in_dirs(str(allowed / "escape.pem"), dirs)  # a link out of the directory
    assert not in_dirs(f"{allowed}/../mqferry.yaml", dirs)
    assert not in_dirs(str(allowed), dirs)
    assert not in_dirs("ca.pem", dirs)
    assert not in_dirs(f"{allowed}-other/ca.pem", dirs)
    assert not in_dirs("/etc/passwd", [])
    with pytest.raises(ApiError, match="none is"):
        refuse_files({"ssl": {"keyfile": str(allowed / "k.pem")}}, None, [], "connectors.x.y")
    # inside the directory, a client certificate may follow new hosts
    stored = {"server": "a:1", "ssl": {"certfile": str(allowed / "c.pem")}}
    refuse_files({**stored, "server": "b:1"}, stored, dirs, "connectors.mqtt.m")

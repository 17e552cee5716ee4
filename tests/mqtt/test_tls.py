"""``mqtt.ssl``: the config fields, the SSL context built from them, and the error texts."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from mqferry._config.models import MqttConfig, MqttSslConfig
from mqferry._config.secrets import REDACTED
from mqferry._errors import ConfigError
from mqferry._mqtt.tls import explain, server_hostname, ssl_context

KEY_PASSWORD = "k3y-pass"  # noqa: S105 - the test key's password


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A CA, a client certificate, its key in clear and encrypted, made with openssl."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl not found: run scripts/services.sh install", pytrace=False)
    d = tmp_path_factory.mktemp("pki")

    def run(*args: str | Path) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", d / "ca.key", "-out", d / "ca.pem", "-days", "1",
        "-subj", "/CN=test CA")
    run("req", "-x509", *ec, "-keyout", d / "client.key", "-out", d / "client.pem", "-days", "1",
        "-subj", "/CN=client")
    run("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", d / "client.key",
        "-passout", f"pass:{KEY_PASSWORD}", "-out", d / "client-enc.key")
    run("req", "-x509", *ec, "-keyout", d / "other.key", "-out", d / "other.pem", "-days", "1",
        "-subj", "/CN=other")
    (d / "junk.pem").write_text("not a certificate\n")
    return {p.stem if p.suffix == ".pem" else p.name: str(p) for p in d.iterdir()}


# ------------------------------------------------------------------------------------- config


def test_defaults_are_emqx_client_defaults() -> None:
    cfg = MqttConfig().ssl
    assert (cfg.enable, cfg.verify, cfg.server_name_indication) == (False, "verify_none", "auto")
    assert cfg.versions == ["tlsv1.3", "tlsv1.2"]
    assert cfg.ciphers == []


def test_port_defaults_to_8883_with_tls() -> None:
    assert MqttConfig(server="broker.example", ssl={"enable": True}).port == 8883
    assert MqttConfig(server="broker.example").port == 1883
    assert MqttConfig(server="broker.example:9999", ssl={"enable": True}).port == 9999


def test_key_password_is_a_secret() -> None:
    cfg = MqttConfig(ssl={"enable": True, "certfile": "c.pem", "password": "s3cret"})
    assert cfg.ssl.password is not None
    assert cfg.ssl.password.get_secret_value() == "s3cret"
    assert cfg.model_dump(mode="json")["ssl"]["password"] == REDACTED
    assert "s3cret" not in repr(cfg)


@pytest.mark.parametrize(("ssl_section", "message"), [
    ({"verify": "verify_host"}, "verify_peer"),
    ({"versions": ["tlsv1.1"]}, "tlsv1.3"),
    ({"versions": []}, "at least 1"),
    ({"server_name_indication": "not a name"}, "'auto', 'disable' or a DNS host name"),
    ({"keyfile": "k.pem"}, "ssl.keyfile needs ssl.certfile"),
    ({"cacertfile": "-----BEGIN CERTIFICATE-----\nMII"}, "inline PEM is not supported"),
    ({"ciphers": ["NOT-A-CIPHER"]}, "cipher 'NOT-A-CIPHER' is unknown to OpenSSL"),
    ({"ciphers": ["TLS_NOT_A_SUITE"]}, "unknown TLS 1.3 cipher suite 'TLS_NOT_A_SUITE'"),
    ({"ciphers": ["TLS_AES_128_GCM_SHA256"]}, "lists no TLS 1.2 cipher"),
    ({"depth": 10}, "Extra inputs are not permitted"),
])
def test_invalid_fields_are_named(ssl_section: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        MqttConfig(ssl={"enable": True, **ssl_section})
    assert message in str(err.value)


def test_ciphers_may_be_a_comma_separated_string() -> None:
    cfg = MqttSslConfig(ciphers="ECDHE-ECDSA-AES128-GCM-SHA256, TLS_AES_128_GCM_SHA256")
    assert cfg.ciphers == ["ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_AES_128_GCM_SHA256"]


# ------------------------------------------------------------------------------------- context


def test_verify_none_checks_nothing() -> None:
    ctx = ssl_context(MqttSslConfig(enable=True))
    assert ctx.verify_mode is ssl.CERT_NONE
    assert ctx.check_hostname is False


def test_verify_peer_checks_the_certificate_and_the_host_name(pki: dict[str, str]) -> None:
    ctx = ssl_context(MqttSslConfig(enable=True, verify="verify_peer", cacertfile=pki["ca"]))
    assert ctx.verify_mode is ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "test CA"),),)]
    assert server_hostname(MqttSslConfig(enable=True), "broker.local") == "broker.local"


def test_versions_bound_the_protocol() -> None:
    ctx = ssl_context(MqttSslConfig(enable=True, versions=["tlsv1.2"]))
    assert (ctx.minimum_version, ctx.maximum_version) == (ssl.TLSVersion.TLSv1_2,
                                                          ssl.TLSVersion.TLSv1_2)
    ctx = ssl_context(MqttSslConfig(enable=True, versions=["tlsv1.3"]))
    assert ctx.minimum_version is ssl.TLSVersion.TLSv1_3


def test_ciphers_narrow_tls12() -> None:
    ctx = ssl_context(MqttSslConfig(enable=True, ciphers=["ECDHE-ECDSA-AES128-GCM-SHA256"]))
    tls12 = [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 == ["ECDHE-ECDSA-AES128-GCM-SHA256"]


@pytest.mark.parametrize(("sni", "sent", "checks"), [
    ("disable", None, False),
    ("broker.example", "broker.example", True),
])
def test_server_name_indication(pki: dict[str, str], sni: str, sent: str | None,
                                checks: bool) -> None:
    cfg = MqttSslConfig(enable=True, verify="verify_peer", cacertfile=pki["ca"],
                        server_name_indication=sni)
    ctx = ssl_context(cfg)
    assert ctx.check_hostname is checks
    # the connection passes this name to the event loop instead of the broker's address
    name = server_hostname(cfg, "127.0.0.1")
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    wrapped = ctx.wrap_bio(incoming, outgoing, server_hostname=name or None)
    assert wrapped.server_hostname == sent


def test_client_certificate_with_an_encrypted_key(pki: dict[str, str]) -> None:
    cfg = MqttSslConfig(enable=True, certfile=pki["client"], keyfile=pki["client-enc.key"],
                        password=KEY_PASSWORD)
    assert isinstance(ssl_context(cfg), ssl.SSLContext)


@pytest.mark.parametrize(("fields", "path", "reason"), [
    ({"verify": "verify_peer", "cacertfile": "/nonexistent/ca.pem"}, "ssl.cacertfile",
     "No such file or directory"),
    ({"verify": "verify_peer", "cacertfile": "junk"}, "ssl.cacertfile", "no PEM certificate"),
    ({"certfile": "client", "keyfile": "client-enc.key", "password": "wrong"}, "ssl.certfile",
     "wrong ssl.password?"),
    ({"certfile": "client", "keyfile": "client-enc.key"}, "ssl.certfile",
     "is it encrypted (set ssl.password)?"),
    ({"certfile": "client", "keyfile": "other.key"}, "ssl.certfile",
     "does not belong to the certificate"),
    ({"certfile": "/nonexistent/client.pem"}, "ssl.certfile", "No such file or directory"),
])
def test_unusable_files_are_named_and_the_reason_logged(
        pki: dict[str, str], fields: dict[str, str], path: str, reason: str,
        caplog: pytest.LogCaptureFixture) -> None:
    resolved = {k: pki.get(v, v) if k.endswith("file") else v for k, v in fields.items()}
    with pytest.raises(ConfigError) as err:
        ssl_context(MqttSslConfig(enable=True, **resolved))
    [(where, what)] = err.value.problems
    assert where == path
    # The message may reach a client of the API: the file, never why (the log has that).
    named = resolved.get(path.removeprefix("ssl."))
    assert named is not None and named in what
    assert what.endswith("(the reason is in the mqferry log)")
    assert reason not in what
    assert reason in caplog.text


# ------------------------------------------------------------------------------------- errors


_VERIFY_FAILED = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "


@pytest.mark.parametrize(("raw", "meaning"), [
    (f"{_VERIFY_FAILED}certificate has expired (_ssl.c:1006)",
     "TLS: the broker's certificate has expired"),
    (f"{_VERIFY_FAILED}Hostname mismatch, certificate is not valid for 'x'. (_ssl.c:1006)",
     "TLS: the broker's certificate does not hold the host"),
    (f"{_VERIFY_FAILED}unable to get local issuer certificate (_ssl.c:1006)",
     "TLS: the broker's certificate is not signed by a CA in ssl.cacertfile"),
    ("[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required (_ssl.c:2580)",
     "TLS: the broker requires a client certificate"),
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)",
     "TLS: the broker did not answer in TLS (is this a TLS port?)"),
    ("[code:134] Bad user name or password", "login: the broker refused the username"),
    ("[code:135] Not authorized", "login: the broker refused the credentials"),
])
def test_explain_names_the_failed_check_and_keeps_the_original(raw: str, meaning: str) -> None:
    text = explain(raw)
    assert text.startswith(meaning)
    assert text.endswith(f"({raw})")


def test_explain_leaves_other_errors_alone() -> None:
    assert explain(ConnectionRefusedError(111, "Connection refused")) == \
        "[Errno 111] Connection refused"

"""The server name (SNI) sent to Kafka brokers over TLS, seen by a local TLS server.

The client side is aiokafka's own connection code, so the test covers the path the producer and
consumer take; the server accepts the handshake and reports the name it was sent.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess

import pytest
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import KafkaConnectionError
from pydantic import ValidationError

from mqferry_kafka.config import KafkaConnectorConfig, client_options


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "kafka.crt", d / "kafka.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=kafka.example", "-addext", "subjectAltName=DNS:kafka.example",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True,
                   timeout=60)
    return crt, key


async def handshake(cert, sni: str) -> tuple[str | None, BaseException | None]:
    """Connect as the Kafka client would; return the name the server saw and the client error."""
    crt, key = cert
    seen: list[str | None] = []
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(crt, key)
    server_ctx.sni_callback = lambda sock, name, ctx: seen.append(name)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()  # after the handshake: the client's first Kafka request finds it closed

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    cfg = KafkaConnectorConfig(bootstrap_hosts=f"127.0.0.1:{port}", ssl={
        "enable": True, "verify": "verify_peer", "cacertfile": str(crt),
        "server_name_indication": sni})
    opts = client_options(cfg, "t")
    conn = AIOKafkaConnection("127.0.0.1", port, ssl_context=opts["ssl_context"],
                              security_protocol="SSL", request_timeout_ms=5000)
    error: BaseException | None = None
    try:
        await conn.connect()
    except ssl.SSLError as exc:  # the handshake failed
        error = exc
    except KafkaConnectionError:
        pass  # the handshake passed; the server is not a Kafka broker
    finally:
        conn.close()
        server.close()
        await server.wait_closed()
    return (seen[0] if seen else None), error


async def test_a_configured_name_is_sent_and_the_certificate_checked_against_it(cert):
    name, error = await handshake(cert, "kafka.example")
    assert name == "kafka.example" and error is None


async def test_auto_sends_the_address_so_a_certificate_for_another_name_is_refused(cert):
    name, error = await handshake(cert, "auto")
    assert name is None  # an IP address is never sent as a server name
    assert isinstance(error, ssl.SSLCertVerificationError)


async def test_disable_sends_no_name_and_checks_only_the_chain(cert):
    name, error = await handshake(cert, "disable")
    assert name is None and error is None


async def test_a_name_for_which_the_certificate_is_not_valid_is_refused(cert):
    name, error = await handshake(cert, "other.example")
    assert name == "other.example"
    assert isinstance(error, ssl.SSLCertVerificationError)


def test_an_invalid_server_name_is_a_config_error():
    with pytest.raises(ValidationError, match="server_name_indication"):
        KafkaConnectorConfig(bootstrap_hosts="h:9092", ssl={"server_name_indication": "a b"})

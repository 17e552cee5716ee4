"""The API over TLS, with a certificate made for the test by openssl."""

from __future__ import annotations

import shutil
import ssl
import subprocess

import httpx
import pytest

from mqferry._api import ApiServer, create_api
from mqferry._config.models import ApiConfig


@pytest.fixture
def cert(tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    crt, key = tmp_path / "api.crt", tmp_path / "api.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True,
                   timeout=60)
    return crt, key


async def test_https_only(controller, keys, cert):
    store, auth = keys
    crt, key = cert
    config = ApiConfig(listen="127.0.0.1:0",
                       ssl={"enable": True, "certfile": str(crt), "keyfile": str(key)})
    server = ApiServer(create_api(controller, store), config)
    assert await server.start()
    try:
        trust = ssl.create_default_context(cafile=str(crt))
        async with httpx.AsyncClient(verify=trust, auth=auth) as c:
            r = await c.get(f"https://127.0.0.1:{server.port}/api/v5/rules")
            assert r.status_code == 200
            with pytest.raises(httpx.HTTPError):
                await c.get(f"http://127.0.0.1:{server.port}/api/v5/rules")
        async with httpx.AsyncClient(auth=auth) as untrusting:
            with pytest.raises(httpx.ConnectError):
                await untrusting.get(f"https://127.0.0.1:{server.port}/api/v5/rules")
    finally:
        await server.stop()


async def test_bad_tls_files_and_busy_ports_do_not_stop_the_instance(controller, keys,
                                                                     tmp_path, caplog):
    store, _ = keys
    bad = ApiConfig(listen="127.0.0.1:0", ssl={"enable": True, "certfile": str(tmp_path / "x"),
                                               "keyfile": str(tmp_path / "y")})
    assert not await ApiServer(create_api(controller, store), bad).start()
    first = ApiServer(create_api(controller, store), ApiConfig(listen="127.0.0.1:0"))
    assert await first.start()
    try:
        busy = ApiConfig(listen=f"127.0.0.1:{first.port}")
        assert not await ApiServer(create_api(controller, store), busy).start()
        assert "cannot listen" in caplog.text
    finally:
        await first.stop()

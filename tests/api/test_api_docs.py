"""``/api/v5/openapi.json`` and ``/api/v5/docs``: behind the key, Swagger UI from the package."""

from __future__ import annotations

import hashlib
import re

import httpx

from mqferry._api import create_api
from mqferry._api.docs import SWAGGER_DIR


async def test_the_document_and_the_page_need_a_key(controller, keys):
    store, auth = keys
    api = create_api(controller, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://m/api/v5") as c:
        for path in ("/openapi.json", "/docs", "/docs/swagger-ui-bundle.js",
                     "/docs/swagger-ui.css", "/docs/init.js"):
            r = await c.get(path)
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"].startswith("Basic")  # the browser asks
            assert (await c.get(path, auth=auth)).status_code == 200, path


async def test_the_document_declares_the_key(client):
    doc = (await client.get("/openapi.json")).json()
    assert doc["security"] == [{"api_key": []}]
    assert doc["components"]["securitySchemes"]["api_key"] == {
        "type": "http", "scheme": "basic",
        "description": "An API key and its secret (`mqferry api-key create`)."}
    assert "/api/v5/rules" in doc["paths"]
    assert not any("docs" in p or "openapi" in p for p in doc["paths"])


async def test_swagger_ui_comes_from_the_package_not_a_cdn(client):
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls, page.text
    assert all(not u.startswith(("http:", "https:", "//")) for u in urls), urls
    assert "<script>" not in page.text  # no inline script: the CSP forbids it
    for url in urls:
        served = await client.get(f"/{url}")
        assert served.status_code == 200, url
        on_disk = (SWAGGER_DIR / url.removeprefix("docs/")).read_bytes()
        assert hashlib.sha256(served.content).digest() == hashlib.sha256(on_disk).digest()
    assert (SWAGGER_DIR / "LICENSE").read_text().lstrip().startswith("Apache License")
    for probe in ("/docs/LICENSE", "/docs/..%2Fapp.py", "/docs/README.md"):
        assert (await client.get(probe)).status_code == 404, probe

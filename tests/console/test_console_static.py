"""The built console: served under /dashboard by the API app, and built from the current sources."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from mqferry._api import create_api
from mqferry._api.console import CONSOLE_DIR, mount_console

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "console"
BUILD_INPUTS = [
    "index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts"]


def _source_hash() -> str:
    """The hash console/scripts/stamp.mjs writes: every build input, by path, sorted."""
    files = [SOURCES / f for f in BUILD_INPUTS]
    files += [p for p in (SOURCES / "src").rglob("*") if p.is_file()]
    names = sorted(p.relative_to(SOURCES).as_posix() for p in files)
    digest = hashlib.sha256()
    for name in names:
        if name.endswith(".test.ts"):
            continue
        digest.update(name.encode() + b"\0")
        digest.update((SOURCES / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@pytest.mark.skipif(not SOURCES.is_dir(), reason="console sources are not in this tree")
def test_the_committed_build_matches_the_console_sources():
    stamp = (CONSOLE_DIR / "SOURCE_HASH").read_text().strip()
    assert stamp == _source_hash(), (
        "core/mqferry/console_dist is stale: run `npm ci && npm run build` in console/ "
        "and commit it")


def test_the_build_references_only_its_own_files():
    index = (CONSOLE_DIR / "index.html").read_text()
    assert "http://" not in index and "https://" not in index
    assets = list((CONSOLE_DIR / "assets").iterdir())
    assert {p.suffix for p in assets} >= {".js", ".css"}
    for asset in assets:
        assert f"./assets/{asset.name}" in index


@pytest.fixture
async def served(controller, keys):
    store, auth = keys
    api = create_api(controller, store)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://mqferry") as c:
        yield c, auth


async def test_the_console_is_served_under_dashboard(served):
    client, _ = served
    r = await client.get("/dashboard/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert '<div id="app">' in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-cache"
    asset = next(p for p in (CONSOLE_DIR / "assets").iterdir() if p.suffix == ".js")
    r = await client.get(f"/dashboard/assets/{asset.name}")
    assert r.status_code == 200
    assert "immutable" in r.headers["cache-control"]
    assert r.content == asset.read_bytes()


@pytest.mark.parametrize("path", ["/", "/dashboard"])
async def test_bare_paths_redirect_to_the_console(served, path):
    client, _ = served
    r = await client.get(path)
    assert r.status_code == 307
    assert r.headers["location"] == "/dashboard/"


async def test_the_api_still_needs_a_key_and_the_console_is_not_in_the_openapi_document(served):
    client, auth = served
    assert (await client.get("/api/v5/rules")).status_code == 401
    assert (await client.get("/api/v5/rules", auth=auth)).status_code == 200
    assert (await client.get("/api/v5/openapi.json")).status_code == 401
    doc = (await client.get("/api/v5/openapi.json", auth=auth)).json()
    assert not any(p.startswith("/dashboard") or p == "/" for p in doc["paths"])
    assert (await client.get("/dashboard/nothing-here.js")).status_code == 404


def test_without_a_build_nothing_is_mounted(tmp_path, caplog):
    from fastapi import FastAPI

    api = FastAPI()
    assert mount_console(api, tmp_path) is False
    assert "no built console" in caplog.text
    assert not any(getattr(r, "path", "") == "/dashboard" for r in api.routes)

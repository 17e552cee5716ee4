"""Roles: a viewer reads, an administrator changes; checked on every route the app has."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml
from click.testing import CliRunner
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Mount

from mqferry._api import create_api
from mqferry._api.keys import KeyStore
from mqferry._cli import build_cli

#: The only routes outside /api/v5, all without settings: liveness and the console's files.
PUBLIC = {"/status", "/", "/dashboard"}
PARAMS = {"id": "fake:c1", "enable": "true", "asset": "init.js"}
#: Reads that only administrators may make.
ADMIN_ONLY_READS = {"/api/v5/audit"}


def _url(path: str) -> str:
    for name, value in PARAMS.items():
        rule = name == "id" and path.startswith("/api/v5/rules")
        path = path.replace(f"{{{name}}}", "r1" if rule else value)
    return path


def _operations(api):
    """Every (method, path) the app answers, included routers flattened."""
    ops = []
    for ctx in iter_route_contexts(api.routes):
        if isinstance(ctx.original_route, Mount):
            assert ctx.path in PUBLIC, ctx.path
            continue
        if not ctx.path.startswith("/api/v5/"):
            assert ctx.path in PUBLIC, f"{ctx.path} is outside /api/v5 and not public"
            continue
        assert isinstance(ctx.original_route, APIRoute), ctx.path
        ops += [(method, ctx.path) for method in sorted(ctx.methods)]
    assert len(ops) > 40
    return ops


@pytest.fixture
def viewer(keys):
    store, _ = keys
    key, secret = store.create("dashboards", role="viewer")
    return key.api_key, secret


async def test_every_route_needs_a_key_and_a_viewer_only_reads(controller, keys, viewer,
                                                               config_file):
    store, admin = keys
    api = create_api(controller, store)
    before = config_file.read_text()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://m") as c:
        for method, path in _operations(api):
            url = _url(path)
            anonymous = await c.request(method, url, json={})
            assert anonymous.status_code == 401, (method, url, anonymous.text)
            r = await c.request(method, url, json={}, auth=viewer)
            if method == "GET" and path not in ADMIN_ONLY_READS:
                assert r.status_code not in (401, 403), (method, url, r.text)
            else:
                assert (r.status_code, r.json()["code"]) == (403, "FORBIDDEN"), (method, url)
                assert "viewer" in r.json()["message"]
            if method == "GET":  # reads only: an administrator's change would change the file
                assert (await c.get(url, auth=admin)).status_code not in (401, 403), url
    assert config_file.read_text() == before
    assert set(controller.app.connectors) == {"fake:c1"}


async def test_whoami_names_the_key_and_its_role(client, controller, keys, viewer):
    me = (await client.get("/whoami")).json()
    assert (me["name"], me["role"]) == ("test", "administrator")
    store, _ = keys
    api = create_api(controller, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://m/api/v5", auth=viewer) as c:
        assert (await c.get("/whoami")).json() == {"api_key": viewer[0], "name": "dashboards",
                                                   "role": "viewer"}


def test_keys_made_before_roles_are_administrators(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    key, secret = store.create("old")
    raw = json.loads(store.path.read_text())
    del raw["keys"][0]["role"]
    store.path.write_text(json.dumps(raw))
    assert KeyStore(store.path).authenticate(key.api_key, secret).role == "administrator"
    with pytest.raises(ValueError, match="unknown role 'root'"):
        store.create("x", role="root")


def test_an_unknown_role_in_the_store_may_do_nothing():
    from mqferry._api.roles import allowed

    assert not allowed("root", "GET", None)
    assert allowed("viewer", "GET", None)
    assert not allowed("viewer", "POST", None)
    assert allowed("administrator", "DELETE", None)


def test_api_key_create_with_a_role(tmp_path):
    store_path = tmp_path / "keys.json"
    r = CliRunner().invoke(build_cli(), ["api-key", "create", "--key-store", str(store_path),
                                         "--name", "grafana", "--role", "viewer"])
    assert r.exit_code == 0, r.output
    lines = dict(line.split(":", 1) for line in r.stdout.splitlines())
    assert lines["role"].strip() == "viewer"
    key = KeyStore(store_path).authenticate(lines["api_key"].strip(),
                                            lines["api_secret"].strip())
    assert key is not None and key.role == "viewer"
    bad = CliRunner().invoke(build_cli(), ["api-key", "create", "--key-store", str(store_path),
                                           "--name", "x", "--role", "root"])
    assert bad.exit_code == 2 and "root" in bad.output
    assert yaml.safe_load(store_path.read_text())["keys"][0]["name"] == "grafana"

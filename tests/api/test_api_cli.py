"""The CLI client commands against a served API (uvicorn on a free port), and api-key create."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml
from click.testing import CliRunner

from mqferry._api import ApiServer, KeyStore, create_api
from mqferry._cli import build_cli
from mqferry._config.models import ApiConfig
from tests.api.helpers import publish


@pytest.fixture
async def served(controller, keys, plugins):
    store, (key, secret) = keys
    server = ApiServer(create_api(controller, store), ApiConfig(listen="127.0.0.1:0"))
    assert await server.start()
    env = {"MQFERRY_API_URL": f"http://127.0.0.1:{server.port}", "MQFERRY_API_KEY": key,
           "MQFERRY_API_SECRET": secret}
    cli = build_cli(plugins)

    async def run(*args, env_=env):
        return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env_,
                                       obj={"plugins": plugins})

    yield run
    await server.stop()


async def test_list_show_metrics_as_tables_and_json(served, controller):
    publish(controller.app, "t/1", b'{"v": 1}')
    r = await served("rules", "list")
    assert r.exit_code == 0, r.output
    header, row = r.output.splitlines()
    assert header.split() == ["ID", "ENABLE", "FROM", "ACTIONS", "DESCRIPTION"]
    assert row.split() == ["r1", "true", "t/#", "fake:a1", "first"]
    r = await served("rules", "list", "--json")
    assert json.loads(r.output)[0]["id"] == "r1"
    r = await served("rules", "metrics", "r1")
    assert "matched" in r.output
    assert any(line.split() == ["matched", "1"] for line in r.output.splitlines())
    r = await served("actions", "list")
    assert r.output.splitlines()[1].split() == ["fake:a1", "true", "connected", "c1", "-"]
    r = await served("actions", "show", "fake:a1", "--json")
    assert json.loads(r.output)["parameters"]["topic"] == "out"
    r = await served("connectors", "show", "fake:c1")
    assert "******" in r.output
    assert "s3cret" not in r.output
    r = await served("connectors", "list")
    assert r.output.splitlines()[1].split()[:3] == ["fake:c1", "true", "connected"]
    r = await served("connectors", "metrics", "fake:c1")
    assert r.exit_code == 0, r.output
    assert any(line.split() == ["matched", "1"] for line in r.output.splitlines())
    r = await served("sources", "list")
    assert r.output.split() == ["ID", "ENABLE", "STATUS", "CONNECTOR", "REASON"]


async def test_errors_are_one_line(served):
    r = await served("rules", "show", "nope")
    assert r.exit_code == 1
    assert "NOT_FOUND: rule nope not found" in r.output
    r = await served("rules", "list", env_={"MQFERRY_API_URL": "http://127.0.0.1:1"})
    assert r.exit_code == 1
    assert "cannot reach mqferry" in r.output


async def test_config_reload(served, config_file):
    data = yaml.safe_load(config_file.read_text())
    data["rules"]["r1"]["enable"] = False
    config_file.write_text(yaml.safe_dump(data))
    r = await served("config", "reload")
    assert r.exit_code == 0, r.output
    assert "rules changed: r1" in r.output
    assert "unsubscribed: t/#" in r.output


def test_api_key_create(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "d"),
                                   "api": {"key_store": "keys.json"}}))
    r = CliRunner().invoke(build_cli(), ["api-key", "create", "-c", str(cfg), "--name", "ops"])
    assert r.exit_code == 0, r.output
    lines = dict(line.split(":", 1) for line in r.stdout.splitlines())
    key, secret = lines["api_key"].strip(), lines["api_secret"].strip()
    store = KeyStore(tmp_path / "d" / "keys.json")
    assert store.verify(key, secret)
    again = CliRunner().invoke(build_cli(), ["api-key", "create", "-c", str(cfg),
                                             "--name", "ops"])
    assert again.exit_code == 1
    assert "exists" in again.output
    neither = CliRunner().invoke(build_cli(), ["api-key", "create", "--name", "x"])
    assert neither.exit_code == 2

"""An App with the fake plugin, its controller, a key and an httpx client of its API."""

from __future__ import annotations

import httpx
import pytest
import yaml

from mqferry._api import KeyStore, create_api
from mqferry._runtime.reconfig import Controller
from mqferry.testing import build_app
from tests.api.fakes import fake_plugins, reset_fakes

BASE_CONFIG = {
    "connectors": {"fake": {"c1": {"url": "fake://one", "password": "s3cret-pw"}}},
    "actions": {"fake": {"a1": {"connector": "c1", "parameters": {"topic": "out"}}}},
    "rules": {"r1": {"sql": 'SELECT payload.v AS v FROM "t/#"',
                     "actions": ["fake:a1"], "description": "first"}},
}


@pytest.fixture(scope="session")
def plugins():
    return fake_plugins()


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "mqferry.yaml"
    path.write_text(yaml.safe_dump(BASE_CONFIG))
    return path


@pytest.fixture
async def controller(plugins, config_file, tmp_path):
    reset_fakes()
    data = yaml.safe_load(config_file.read_text())
    # The data path on an MQTT twin: tests.api.helpers.publish delivers through it.
    h = build_app(data, plugins=plugins, data_dir=tmp_path)
    ctrl = Controller(h.app, plugins, path=config_file)
    await h.start()
    yield ctrl
    await h.stop()


@pytest.fixture
def keys(tmp_path):
    store = KeyStore(tmp_path / "keys.json")
    key, secret = store.create("test")
    return store, (key.api_key, secret)


@pytest.fixture
async def client(controller, keys):
    store, auth = keys
    api = create_api(controller, store)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://mqferry/api/v5",
                                 auth=auth) as c:
        yield c

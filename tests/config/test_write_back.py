"""A change through the API keeps the operator's file: comments, key order, block SQL and
``${NAME}`` references stay, and only the changed node is written again."""

from __future__ import annotations

import difflib

import httpx
import pytest
import yaml

from mqferry._api import KeyStore, create_api
from mqferry._config import REDACTED
from mqferry._config.persist import write_config
from mqferry._config.yamlfile import read_yaml
from mqferry._runtime import App
from mqferry._runtime.reconfig import Controller
from tests.api.fakes import fake_plugins, reset_fakes

FILE = """\
# The operator's notes: what this instance is for.
mqtt:
  server: 127.0.0.1:${MQFERRY_TEST_MQTT_PORT:-1883}  # the broker
  clientid: mqferry-test
  keepalive: 30s

connectors:
  fake:
    # the one connector
    c1:
      url: "fake://${MQFERRY_TEST_FAKE_HOST:-one}"   # where it goes
      password: ${MQFERRY_TEST_FAKE_PW}

actions:
  fake:
    a1:
      connector: c1
      parameters:
        topic: out  # the output topic

rules:
  # the first rule
  r1:
    sql: |
      SELECT
        payload.v AS v
      FROM "t/#"
    actions:
      - fake:a1
    description: first
  r2:
    sql: 'SELECT 1 AS one FROM "x"'   # one line
    description: second
"""


def ctrl_config(plugins, path):
    from mqferry._config import load_config
    return load_config(path, plugins.registries(), plugins.function_table())


@pytest.fixture
async def api(tmp_path, monkeypatch):
    monkeypatch.setenv("MQFERRY_TEST_FAKE_PW", "pw-from-env")
    monkeypatch.delenv("MQFERRY_TEST_FAKE_HOST", raising=False)
    reset_fakes()
    plugins = fake_plugins()
    path = tmp_path / "mqferry.yaml"
    path.write_text(FILE)
    ctrl = Controller(App(ctrl_config(plugins, path), data_dir=tmp_path), plugins, path=path)
    store = KeyStore(tmp_path / "keys.json")
    key, secret = store.create("test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_api(ctrl, store)),
                                 base_url="http://mqferry/api/v5",
                                 auth=(key.api_key, secret)) as client:
        yield client, ctrl, path


def changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(),
                                                  lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


async def test_a_rule_change_rewrites_one_line(api):
    client, ctrl, path = api
    r = await client.put("/rules/r1", json={"description": "changed"})
    assert r.status_code == 200, r.text
    await ctrl.flush()
    assert changed_lines(FILE, path.read_text()) == ["-    description: first",
                                                     "+    description: changed"]


async def test_a_rule_sql_change_keeps_the_block_scalar(api):
    client, ctrl, path = api
    sql = 'SELECT\n  payload.v AS v,\n  topic\nFROM "t/#"\n'
    r = await client.put("/rules/r1", json={"sql": sql})
    assert r.status_code == 200, r.text
    await ctrl.flush()
    assert changed_lines(FILE, path.read_text()) == ["-        payload.v AS v",
                                                     "+        payload.v AS v,",
                                                     "+        topic"]
    assert read_yaml(path, env=False)["rules"]["r1"]["sql"] == sql


async def test_an_action_sent_back_from_its_view_changes_only_what_the_client_changed(api):
    client, ctrl, path = api
    view = (await client.get("/actions/fake:a1")).json()
    body = {k: view[k] for k in ("connector", "parameters", "enable", "description")}
    body["parameters"]["topic"] = "out2"
    r = await client.put("/actions/fake:a1", json=body)
    assert r.status_code == 200, r.text
    await ctrl.flush()
    text = path.read_text()
    # The defaults the view shows (enable, description, ...) are written, nothing is lost: the
    # topic line keeps its comment.
    # ruamel.yaml keeps the comment at its column.
    assert "        topic: out2 # the output topic\n" in text
    assert "-        topic: out  # the output topic" in changed_lines(FILE, text)
    assert all(line.startswith("+") for line in changed_lines(FILE, text)
               if "topic" not in line)


async def test_a_connector_sent_back_unchanged_keeps_its_references(api):
    client, ctrl, path = api
    view = (await client.get("/connectors/fake:c1")).json()
    assert view["url"] == "fake://one"  # expanded for the view
    assert view["password"] == REDACTED
    body = {k: view[k] for k in ("url", "password", "description")}
    body["description"] = "the fake"
    r = await client.put("/connectors/fake:c1", json=body)
    assert r.status_code == 200, r.text
    await ctrl.flush()
    text = path.read_text()
    assert 'url: "fake://${MQFERRY_TEST_FAKE_HOST:-one}"   # where it goes\n' in text
    assert "password: ${MQFERRY_TEST_FAKE_PW}\n" in text
    assert "pw-from-env" not in text
    assert changed_lines(FILE, text) == ["+      description: the fake"]


async def test_a_client_cannot_bring_an_environment_reference(api):
    client, ctrl, path = api
    r = await client.put("/rules/r2", json={"description": "${MQFERRY_TEST_FAKE_PW}"})
    assert r.status_code == 400, r.text
    assert "rules.r2.description" in r.text and "pw-from-env" not in r.text
    view = (await client.get("/actions/fake:a1")).json()
    body = {"connector": "c1", "parameters": {"topic": "${MQFERRY_TEST_FAKE_PW}"}}
    r = await client.put("/actions/fake:a1", json=body)
    assert r.status_code == 400, r.text
    await ctrl.flush()
    assert path.read_text() == FILE
    assert view["parameters"]["topic"] == "out"


async def test_a_new_rule_with_multi_line_sql_is_a_block_scalar(api):
    client, ctrl, path = api
    r = await client.post("/rules", json={"id": "r3", "sql": 'SELECT\n  *\nFROM "n/#"\n',
                                          "actions": ["fake:a1"]})
    assert r.status_code == 201, r.text
    await ctrl.flush()
    text = path.read_text()
    assert text.startswith(FILE)  # appended after the last rule, nothing else touched
    assert '  r3:\n    sql: |\n      SELECT\n        *\n      FROM "n/#"\n' in text
    assert yaml.safe_load(text)["rules"]["r3"]["actions"] == ["fake:a1"]


async def test_deleting_an_entry_takes_its_comment_with_it(api):
    client, ctrl, path = api
    r = await client.delete("/rules/r1")
    assert r.status_code == 204, r.text
    await ctrl.flush()
    text = path.read_text()
    assert "# the first rule" not in text and "r1:" not in text
    assert text.startswith("# The operator's notes")  # the rest stays
    assert "  r2:\n    sql: 'SELECT 1 AS one FROM \"x\"'   # one line\n" in text


async def test_the_mqtt_section_sent_back_keeps_its_reference(api):
    client, ctrl, path = api
    view = (await client.get("/mqtt")).json()["config"]
    assert view["server"] == "127.0.0.1:1883"
    r = await client.put("/mqtt", json={**view, "clientid": "mqferry-other"})
    assert r.status_code == 200, r.text
    await ctrl.flush()
    assert changed_lines(FILE, path.read_text()) == ["-  clientid: mqferry-test",
                                                     "+  clientid: mqferry-other"]


def test_write_config_alone_keeps_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(FILE)
    data = read_yaml(path, env=False)
    data["rules"] = {**data["rules"], "r2": {**data["rules"]["r2"], "description": "2nd"}}
    write_config(path, data)
    assert changed_lines(FILE, path.read_text()) == ["-    description: second",
                                                     "+    description: 2nd"]


async def test_a_reload_while_the_api_changes_cannot_be_written_is_refused(api, full_disk):
    # Reading the file back would undo a change the API confirmed: refused, nothing applied,
    # and the write goes on being retried.
    client, ctrl, path = api
    r = await client.put("/rules/r1", json={"description": "changed"})
    assert r.status_code == 200, r.text
    r = await client.post("/config/reload")
    assert r.status_code == 409, r.text
    assert r.json()["message"].startswith(
        f"the changes made through the API are not written to {path} yet "
        "(No space left on device); reloading now would undo them")
    assert ctrl.data["rules"]["r1"]["description"] == "changed"  # still applied
    assert path.read_text() == FILE
    full_disk.full = False
    await ctrl.flush()
    assert changed_lines(FILE, path.read_text()) == ["-    description: first",
                                                     "+    description: changed"]
    r = await client.post("/config/reload")
    assert r.status_code == 200, r.text

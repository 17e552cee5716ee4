"""The CLI changes a running instance as the API does: rules and components, with -c FILE."""

from __future__ import annotations

import asyncio
import json

import pytest
import yaml
from click.testing import CliRunner

from mqferry._api import ApiServer, create_api
from mqferry._cli import build_cli
from mqferry._config.models import ApiConfig
from tests.api.helpers import publish
from tests.api.test_api_tls import cert  # noqa: F401 (fixture)


@pytest.fixture
async def served(controller, keys, plugins, tmp_path):
    """``run(*args)``: the CLI against the API served on a free port, found through ``-c``."""
    store, (key, secret) = keys
    server = ApiServer(create_api(controller, store), ApiConfig(listen="127.0.0.1:0"))
    assert await server.start()
    instance = tmp_path / "instance.yaml"
    instance.write_text(yaml.safe_dump({"api": {"listen": f"0.0.0.0:{server.port}"}}))
    env = {"MQFERRY_API_KEY": key, "MQFERRY_API_SECRET": secret,
           "MQFERRY_API_URL": "http://127.0.0.1:1"}  # -c wins over the environment
    cli = build_cli(plugins)

    async def run(*args, stdin=None):
        return await asyncio.to_thread(CliRunner().invoke, cli, [*args, "-c", str(instance)],
                                       env=env, input=stdin, obj={"plugins": plugins})

    yield run
    await server.stop()


async def test_rules_create_update_disable_enable_delete(served, controller, config_file):
    r = await served("rules", "create", "--id", "r2", "--sql", 'SELECT payload.v AS v FROM "u/#"',
                     "--action", "fake:a1", "--description", "second")
    assert (r.exit_code, r.output) == (0, "rule r2 created\n")
    assert "u/#" in controller.app.topic_filters
    publish(controller.app, "u/1", b'{"v": 7}')
    assert controller.app.rules["r2"].metrics.get("matched") == 1
    r = await served("rules", "update", "r2", "--sql-file", "-", "--json",
                     stdin='SELECT payload.v AS v FROM "w/#"')
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["from"] == ["w/#"]
    assert json.loads(r.output)["description"] == "second"  # not given: kept
    r = await served("rules", "disable", "r2")
    assert (r.exit_code, r.output) == (0, "rule r2 disabled\n")
    assert "r2" not in controller.app.rules
    assert (await served("rules", "enable", "r2")).exit_code == 0
    assert "r2" in controller.app.rules
    await controller.flush()  # the write-back is coalesced
    on_disk = yaml.safe_load(config_file.read_text())["rules"]["r2"]
    assert on_disk["sql"] == 'SELECT payload.v AS v FROM "w/#"' and on_disk["enable"] is True
    r = await served("rules", "update", "r2", "--no-actions")
    assert controller.app.rules["r2"].actions == []
    r = await served("rules", "delete", "r2")
    assert (r.exit_code, r.output) == (0, "rule r2 deleted\n")
    await controller.flush()
    assert "r2" not in yaml.safe_load(config_file.read_text())["rules"]


async def test_an_inline_action_is_json(served, controller):
    inline = {"function": "republish", "args": {"topic": "out/${topic}"}}
    r = await served("rules", "create", "--id", "r3", "--sql", 'SELECT * FROM "x"',
                     "--action", json.dumps(inline), "--action", "fake:a1", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["actions"] == [inline, "fake:a1"]
    r = await served("rules", "update", "r3", "--action", "{not json")
    assert r.exit_code == 2 and "not a JSON object" in r.output


async def test_rule_errors_name_what_is_wrong(served):
    r = await served("rules", "create", "--id", "bad", "--sql", "SELECT FROM WHERE")
    assert r.exit_code == 1 and r.output.startswith("Error: BAD_REQUEST: "), r.output
    r = await served("rules", "create", "--id", "r1", "--sql", 'SELECT * FROM "t"')
    assert "ALREADY_EXISTS: rule r1 already exists" in r.output
    r = await served("rules", "create", "--sql", 'SELECT * FROM "t"', "--action", "nocolon")
    assert r.exit_code == 2 and "'nocolon': expected <type>:<name>" in r.output
    r = await served("rules", "create", "--id", "x")
    assert r.exit_code == 2 and "a rule needs --sql or --sql-file" in r.output
    r = await served("rules", "update", "r1")
    assert r.exit_code == 2 and "nothing to change" in r.output
    r = await served("rules", "disable", "nope")
    assert r.exit_code == 1 and "NOT_FOUND: rule nope not found" in r.output
    r = await served("rules", "create", "--sql", "x", "--sql-file", "y")
    assert "give --sql or --sql-file, not both" in r.output


async def test_actions_and_connectors_from_settings_files(served, controller, tmp_path,
                                                          config_file):
    settings = tmp_path / "a2.yaml"
    settings.write_text("connector: c1\nparameters:\n  topic: out2  # a comment\n")
    r = await served("actions", "create", "--type", "fake", "--name", "a2",
                     "--file", str(settings))
    assert (r.exit_code, r.output) == (0, "action fake:a2 created\n")
    assert "fake:a2" in controller.app.actions
    as_json = tmp_path / "a2.json"
    as_json.write_text(json.dumps({"connector": "c1", "parameters": {"topic": "out3"}}))
    r = await served("actions", "update", "fake:a2", "--file", str(as_json), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["parameters"]["topic"] == "out3"
    assert (await served("actions", "disable", "fake:a2")).output == "action fake:a2 disabled\n"
    assert "fake:a2" not in controller.app.actions
    assert (await served("actions", "enable", "fake:a2")).exit_code == 0
    assert "fake:a2" in controller.app.actions
    # a connector's secret shown as ****** keeps its value through an update
    r = await served("connectors", "update", "fake:c1", "--file", "-",
                     stdin='{"url": "fake://one", "tags": ["two"], "password": "******"}')
    assert r.exit_code == 0, r.output
    await controller.flush()
    stored = yaml.safe_load(config_file.read_text())["connectors"]["fake"]["c1"]
    assert stored == {"url": "fake://one", "tags": ["two"], "password": "s3cret-pw"}
    r = await served("actions", "delete", "fake:a1")
    assert r.exit_code == 1 and "used by rules r1" in r.output
    r = await served("actions", "delete", "fake:a1", "--remove-from-rules")
    assert (r.exit_code, r.output) == (0, "action fake:a1 deleted\n")
    assert controller.app.rules["r1"].actions == []
    assert (await served("actions", "delete", "fake:a2")).exit_code == 0
    assert controller.app.actions == {}


async def test_settings_file_errors(served, tmp_path):
    missing = tmp_path / "missing.yaml"
    r = await served("actions", "create", "--type", "fake", "--name", "x", "--file", str(missing))
    assert r.exit_code == 1 and f"cannot read {missing}: No such file" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("connector: c1\n  parameters: [\n")
    r = await served("actions", "create", "--type", "fake", "--name", "x", "--file", str(bad))
    assert r.exit_code == 1 and "line 2, column" in r.output and "not valid YAML" in r.output
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    r = await served("actions", "update", "fake:a1", "--file", str(listed))
    assert "expected a mapping of settings, not list" in r.output
    typed = tmp_path / "typed.yaml"
    typed.write_text("type: fake\nconnector: c1\nparameters: {topic: t}\n")
    r = await served("actions", "create", "--type", "fake", "--name", "x", "--file", str(typed))
    assert "'type' is given by --type" in r.output
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("connector: c1\nparameters: {topic: t}\ncolour: red\n")
    r = await served("actions", "create", "--type", "fake", "--name", "x", "--file",
                     str(unknown))
    assert r.exit_code == 1 and "colour" in r.output, r.output


async def test_config_file_address_errors(served, tmp_path, plugins):
    off = tmp_path / "off.yaml"
    off.write_text(yaml.safe_dump({"api": {"enable": False}}))
    r = CliRunner().invoke(build_cli(plugins), ["rules", "list", "-c", str(off)],
                           obj={"plugins": plugins})
    assert r.exit_code == 1 and "the API is disabled (api.enable: false)" in r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"api": {"listen": "nowhere"}}))
    r = CliRunner().invoke(build_cli(plugins), ["rules", "list", "-c", str(bad)],
                           obj={"plugins": plugins})
    assert r.exit_code == 1 and "api:" in r.output and "expected host:port" in r.output
    r = CliRunner().invoke(build_cli(plugins), ["rules", "list", "-c", str(tmp_path / "no")],
                           obj={"plugins": plugins})
    assert r.exit_code == 1 and "cannot read" in r.output


async def test_https_from_the_config_trusts_the_instance_certificate(
        controller, keys, plugins, cert, tmp_path):  # noqa: F811 (the fixture)
    store, (key, secret) = keys
    crt, pem = cert
    tls = {"enable": True, "certfile": str(crt), "keyfile": str(pem)}
    server = ApiServer(create_api(controller, store), ApiConfig(listen="127.0.0.1:0", ssl=tls))
    assert await server.start()
    try:
        instance = tmp_path / "tls.yaml"
        instance.write_text(yaml.safe_dump({"api": {"listen": f"127.0.0.1:{server.port}",
                                                    "ssl": tls}}))
        env = {"MQFERRY_API_KEY": key, "MQFERRY_API_SECRET": secret}

        def run(*args):
            return CliRunner().invoke(build_cli(plugins), list(args), env=env,
                                      obj={"plugins": plugins})

        r = await asyncio.to_thread(run, "rules", "disable", "r1", "-c", str(instance))
        assert (r.exit_code, r.output) == (0, "rule r1 disabled\n")
        assert "r1" not in controller.app.rules
        # without the config, https is not trusted: the error says where it failed
        r = await asyncio.to_thread(run, "rules", "list", "--url",
                                    f"https://127.0.0.1:{server.port}")
        assert r.exit_code == 1 and "CERTIFICATE_VERIFY_FAILED" in r.output
        r = await asyncio.to_thread(run, "rules", "list", "--url",
                                    f"https://127.0.0.1:{server.port}", "--cacert", str(crt))
        assert r.exit_code == 0 and "r1" in r.output
    finally:
        await server.stop()

"""GET and PUT /mqtt: the top-level mqtt section, validated, written back, applied on restart."""

from __future__ import annotations

import yaml

from mqferry._api.redact import REDACTED


async def test_read_the_section_with_defaults_and_no_secret(client, controller, config_file):
    data = yaml.safe_load(config_file.read_text())
    data["mqtt"] = {"server": "broker:1883", "password": "p4ss", "session_expiry": "7200s"}
    config_file.write_text(yaml.safe_dump(data))
    assert (await client.post("/config/reload")).status_code == 200
    body = (await client.get("/mqtt")).json()
    assert body["config"]["server"] == "broker:1883"
    assert body["config"]["password"] == REDACTED
    assert body["config"]["session_expiry"] == "2h"
    assert body["config"]["receive_maximum"] == 1000
    # The running session still uses the settings it started with.
    assert body["restart_needed"] is True


async def test_a_change_is_validated_and_written_back_minimally(client, controller,
                                                                config_file):
    data = yaml.safe_load(config_file.read_text())
    data["mqtt"] = {"server": "broker:1883", "password": "p4ss", "session_expiry": "7200s"}
    config_file.write_text(yaml.safe_dump(data))
    assert (await client.post("/config/reload")).status_code == 200
    section = (await client.get("/mqtt")).json()["config"]
    section["clientid"] = "edge-7"
    r = await client.put("/mqtt", json=section)
    assert r.status_code == 200, r.text
    assert r.json()["config"]["clientid"] == "edge-7"
    await controller.flush()
    saved = yaml.safe_load(config_file.read_text())["mqtt"]
    # Only what the file had or what changed; the password is the stored one, and an unchanged
    # value keeps the file's spelling.
    assert saved == {"server": "broker:1883", "password": "p4ss", "session_expiry": "7200s",
                     "clientid": "edge-7"}
    assert controller.app.config.raw.mqtt.clientid == "edge-7"
    assert controller.app.config.raw.mqtt.password.get_secret_value() == "p4ss"


async def test_invalid_settings_are_refused_naming_the_field(client, config_file):
    before = config_file.read_text()
    r = await client.put("/mqtt", json={"server": "not a host"})
    assert r.status_code == 400
    assert "server" in r.json()["message"]
    r = await client.put("/mqtt", json={"receive_maximum": 0})
    assert r.status_code == 400
    assert "receive_maximum" in r.json()["message"]
    r = await client.put("/mqtt", json={"serverr": "x:1"})
    assert r.status_code == 400
    assert "serverr" in r.json()["message"]
    assert config_file.read_text() == before


async def test_back_to_defaults_removes_the_section(client, controller, config_file):
    section = (await client.get("/mqtt")).json()["config"]
    assert (await client.put("/mqtt", json=section)).status_code == 200
    await controller.flush()
    assert "mqtt" not in yaml.safe_load(config_file.read_text())


async def test_a_secret_reference_from_a_client_is_refused(client, config_file, tmp_path):
    before = config_file.read_text()
    for ref in ("file:///etc/passwd", "${HOME}"):
        r = await client.put("/mqtt", json={"server": "broker:1883", "password": ref})
        assert r.status_code == 400, r.text
        assert "mqtt.password" in r.json()["message"]
        r = await client.put("/mqtt", json={"ssl": {"enable": True, "password": ref}})
        assert r.status_code == 400, r.text
        assert "mqtt.ssl.password" in r.json()["message"]
    assert config_file.read_text() == before


async def test_a_kept_password_never_follows_a_new_server_or_user(client, controller,
                                                                  config_file):
    data = yaml.safe_load(config_file.read_text())
    data["mqtt"] = {"server": "broker:1883", "username": "u", "password": "p4ss"}
    config_file.write_text(yaml.safe_dump(data))
    assert (await client.post("/config/reload")).status_code == 200
    section = (await client.get("/mqtt")).json()["config"]
    for change in ({"server": "elsewhere:1883"}, {"username": "other"}):
        r = await client.put("/mqtt", json={**section, **change})
        assert r.status_code == 400, r.text
        assert "password again" in r.json()["message"]
    await controller.flush()
    assert yaml.safe_load(config_file.read_text())["mqtt"]["server"] == "broker:1883"
    # With the password given again, the move is allowed.
    r = await client.put("/mqtt", json={**section, "server": "elsewhere:1883", "password": "n3w"})
    assert r.status_code == 200, r.text
    assert controller.app.config.raw.mqtt.password.get_secret_value() == "n3w"

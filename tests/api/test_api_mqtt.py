"""GET and PUT /mqtt: the top-level mqtt section, validated, written back, applied on restart."""

from __future__ import annotations

import yaml

from mqferry.api.redact import REDACTED


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


async def test_back_to_defaults_removes_the_section(client, config_file):
    section = (await client.get("/mqtt")).json()["config"]
    assert (await client.put("/mqtt", json=section)).status_code == 200
    assert "mqtt" not in yaml.safe_load(config_file.read_text())

"""Secrets sent through the API: no references, no stored password sent to a new host, no file
system oracle in the errors."""

from __future__ import annotations

import pytest

from mqferry._config import REDACTED
from tests.api.fakes import FakeConnector
from tests.api.helpers import on_disk


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "host-secret"
    path.write_text("host-file-content\n")
    return path


def _references(secret_file):
    return [f"file://{secret_file}", "${HOME}", " file:///etc/passwd"]


async def test_create_refuses_a_secret_reference_naming_the_field(client, controller,
                                                                  config_file, secret_file):
    for ref in _references(secret_file):
        r = await client.post("/connectors", json={"type": "fake", "name": "c2",
                                                   "url": "fake://2", "password": ref})
        assert r.status_code == 400, (ref, r.text)
        assert r.json()["code"] == "BAD_REQUEST"
        assert "connectors.fake.c2.password" in r.json()["message"]
        assert "reference" in r.json()["message"]
    assert "fake:c2" not in controller.app.connectors
    assert "c2" not in (await on_disk(controller, config_file))["connectors"]["fake"]


async def test_update_and_probe_refuse_a_secret_reference(client, controller, config_file,
                                                          secret_file):
    for ref in _references(secret_file):
        put = await client.put("/connectors/fake:c1", json={"url": "fake://one",
                                                            "password": ref})
        assert put.status_code == 400, (ref, put.text)
        assert "connectors.fake.c1.password" in put.json()["message"]
        probe = await client.post("/connectors_probe", json={
            "type": "fake", "name": "p", "url": "fake://ok", "password": ref})
        assert probe.status_code == 400, (ref, probe.text)
        assert "connectors.fake.p.password" in probe.json()["message"]
    assert controller.app.connectors["fake:c1"].config.password.get_secret_value() == "s3cret-pw"
    saved = (await on_disk(controller, config_file))["connectors"]["fake"]["c1"]
    assert saved["password"] == "s3cret-pw"  # noqa: S105 - the fixture's password


async def test_a_literal_password_and_the_placeholder_are_accepted(client, controller):
    r = await client.post("/connectors", json={"type": "fake", "name": "c2", "url": "fake://2",
                                               "password": "p${not_a_ref}file://"})
    assert r.status_code == 201, r.text
    conn = controller.app.connectors["fake:c2"]
    assert conn.config.password.get_secret_value() == "p${not_a_ref}file://"
    same = await client.put("/connectors/fake:c2", json={"url": "fake://2", "tags": ["t"],
                                                         "password": REDACTED})
    assert same.status_code == 200, same.text
    kept = controller.app.connectors["fake:c2"].config.password.get_secret_value()
    assert kept == "p${not_a_ref}file://"


async def test_changing_the_host_or_user_needs_the_password_again(client, controller,
                                                                  config_file):
    r = await client.put("/connectors/fake:c1", json={"url": "fake://attacker",
                                                      "password": REDACTED})
    assert r.status_code == 400, r.text
    assert "send the password again when changing the hosts or the user" in r.json()["message"]
    assert r.json()["fields"] == ["url"]
    assert controller.app.connectors["fake:c1"].config.url == "fake://one"
    probe = await client.post("/connectors_probe", json={"type": "fake", "name": "c1",
                                                         "url": "fake://attacker",
                                                         "password": REDACTED})
    assert probe.status_code == 400, probe.text
    assert "send the password again" in probe.json()["message"]
    assert not any(c.config.url == "fake://attacker" for c in controller.app.connectors.values())
    again = await client.put("/connectors/fake:c1", json={"url": "fake://moved",
                                                          "password": "new-pw"})
    assert again.status_code == 200, again.text
    saved = (await on_disk(controller, config_file))["connectors"]["fake"]["c1"]
    assert saved == {"url": "fake://moved", "password": "new-pw"}


async def test_a_secret_file_error_does_not_tell_whether_a_file_exists(
        client, controller, tmp_path, caplog):
    # The operator's file may hold a reference; when it cannot be read, the client learns
    # that much, never the path or the reason.
    path = tmp_path / "pw"
    path.write_text("from-file")
    await controller.change(lambda data: data["connectors"]["fake"]["c1"].update(
        password=f"file://{path}"))
    path.unlink()
    r = await client.put("/connectors/fake:c1", json={"url": "fake://one", "tags": ["x"],
                                                      "password": REDACTED})
    assert r.status_code == 400, r.text
    assert "cannot read the secret file" in r.json()["message"]
    assert str(path) not in r.text
    assert "No such file" not in r.text
    assert f"cannot read secret file {path}: No such file or directory" in caplog.text
    assert ("start", "fake:c1") in FakeConnector.events


KAFKA = {"bootstrap_hosts": "kafka-1:9092",
         "authentication": {"mechanism": "scram_sha_256", "username": "u", "password": "pw"},
         "ssl": {"enable": True, "password": "key-pw"}}


@pytest.mark.parametrize(("change", "field"), [
    ({"bootstrap_hosts": "evil:9092"}, "bootstrap_hosts"),
    ({"authentication": {"mechanism": "plain", "username": "u", "password": REDACTED}},
     "authentication.mechanism"),
    ({"authentication": {"mechanism": "scram_sha_256", "username": "v",
                         "password": REDACTED}}, "authentication.username"),
])
def test_rebinding_a_kafka_connector_with_a_kept_password_is_refused(change, field):
    from mqferry._api.errors import ApiError
    from mqferry._api.redact import redact, refuse_rebinding

    new = {**redact(KAFKA), **change}
    with pytest.raises(ApiError, match="send the password again") as err:
        refuse_rebinding(new, KAFKA)
    assert err.value.extra["fields"] == [field]
    refuse_rebinding(redact(KAFKA), KAFKA)  # unchanged: accepted
    # A new host with every secret given again: accepted.
    refuse_rebinding({**KAFKA, "bootstrap_hosts": "other:9092"}, KAFKA)


async def test_a_password_given_through_the_api_is_not_world_readable(client, controller,
                                                                     config_file):
    config_file.chmod(0o644)
    r = await client.post("/connectors", json={"type": "fake", "name": "c2", "url": "fake://2",
                                               "password": "given-through-the-api"})
    assert r.status_code == 201, r.text
    saved = await on_disk(controller, config_file)
    assert saved["connectors"]["fake"]["c2"]["password"] == "given-through-the-api"  # noqa: S105
    assert config_file.stat().st_mode & 0o777 == 0o600

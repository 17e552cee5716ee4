"""The audit log: every change through the API, who made it and its result, never a secret."""

from __future__ import annotations

import httpx

from mqferry._api import create_api
from mqferry._api.audit import AuditLog


async def test_changes_are_logged_with_key_target_and_status(client, controller, keys,
                                                             tmp_path):
    store, (admin_key, _) = keys
    viewer_key, viewer_secret = store.create("view", role="viewer")
    created = await client.post("/connectors", json={"type": "fake", "name": "c2",
                                                     "url": "fake://2",
                                                     "password": "audit-secret-pw"})
    assert created.status_code == 201
    bad = await client.put("/connectors/fake:c2", json={"url": 5, "password": "other-pw"})
    assert bad.status_code == 400
    assert (await client.delete("/connectors/fake:c2")).status_code == 204
    assert (await client.get("/connectors")).status_code == 200  # a read: not logged
    api = create_api(controller, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://m/api/v5") as c:
        refused = await c.delete("/rules/r1", auth=(viewer_key.api_key, viewer_secret))
        assert refused.status_code == 403
        anonymous = await c.post("/config/reload", auth=("mqf_guess", "wrong-secret"))
        assert anonymous.status_code == 401
        assert (await c.get("/audit", auth=(viewer_key.api_key, viewer_secret))).status_code \
            == 403

    text = (tmp_path / "audit.jsonl").read_text()
    for secret in ("audit-secret-pw", "other-pw", "wrong-secret", viewer_secret):
        assert secret not in text
    assert (tmp_path / "audit.jsonl").stat().st_mode & 0o777 == 0o600
    listed = (await client.get("/audit", params={"limit": 10})).json()
    entries = [{k: e[k] for k in ("api_key", "name", "role", "method", "path", "target",
                                  "status")} for e in listed["data"]]
    assert entries == [
        {"api_key": "mqf_guess", "name": None, "role": None, "method": "POST",
         "path": "/api/v5/config/reload", "target": None, "status": 401},
        {"api_key": viewer_key.api_key, "name": "view", "role": "viewer", "method": "DELETE",
         "path": "/api/v5/rules/r1", "target": "r1", "status": 403},
        {"api_key": admin_key, "name": "test", "role": "administrator", "method": "DELETE",
         "path": "/api/v5/connectors/fake:c2", "target": "fake:c2", "status": 204},
        {"api_key": admin_key, "name": "test", "role": "administrator", "method": "PUT",
         "path": "/api/v5/connectors/fake:c2", "target": "fake:c2", "status": 400},
        {"api_key": admin_key, "name": "test", "role": "administrator", "method": "POST",
         "path": "/api/v5/connectors", "target": "fake:c2", "status": 201},
    ]
    assert listed["data"][0]["time"].endswith("Z")
    assert listed["meta"]["count"] == 5


def test_the_log_is_bounded_and_rotated(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=2000)
    for i in range(200):
        log.write({"method": "PUT", "path": f"/api/v5/rules/r{i}", "status": 200})
    assert log.path.stat().st_size <= 2000
    assert log.backup.stat().st_size <= 2000
    latest = log.tail(30)
    assert [e["path"] for e in latest[:3]] == [f"/api/v5/rules/r{i}" for i in (199, 198, 197)]
    assert len(latest) == 30  # across the rotation: the current file holds fewer


def test_a_write_error_is_logged_not_raised(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = AuditLog(blocker / "audit.jsonl")
    log.write({"method": "DELETE", "path": "/api/v5/rules/r1", "status": 204})
    assert "cannot write the audit log" in caplog.text
    assert "/api/v5/rules/r1" in caplog.text

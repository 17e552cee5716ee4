"""Rule changes through the API touch one rule: with 10,000 rules a create costs about what it
costs with 100 (no whole-config validation, no recompiling, no rebuilt routing, no full re-render
of the file), and the routing kept incrementally matches the routing rebuilt from scratch."""

from __future__ import annotations

import copy
import time

import httpx
import yaml

from mqferry._api import create_api
from mqferry._config.persist import write_config
from mqferry._runtime.reconfig import Controller
from mqferry.testing import build_app
from tests.api.conftest import BASE_CONFIG
from tests.api.fakes import FakeAction, reset_fakes
from tests.api.helpers import on_disk, publish

CREATES = 40


async def instance(plugins, tmp_path, rules: int) -> Controller:
    data = copy.deepcopy(BASE_CONFIG)
    for i in range(rules):
        data["rules"][f"pre{i}"] = {"sql": f'SELECT payload.v AS v FROM "pre/{i}/#"',
                                    "actions": ["fake:a1"]}
    path = tmp_path / f"rules-{rules}.yaml"
    write_config(path, data)
    h = build_app(data, plugins=plugins, data_dir=tmp_path)
    ctrl = Controller(h.app, plugins, path=path)
    await h.start()
    return ctrl


async def seconds_per_create(ctrl: Controller, keys, tag: str) -> float:
    store, auth = keys
    api = create_api(ctrl, store)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=api),
                                 base_url="http://mqferry/api/v5", auth=auth) as c:
        # The first write-back renders the whole file once; later ones reuse its text.
        r = await c.post("/rules", json={"id": f"{tag}-warm", "sql": 'SELECT 1 AS one FROM "w"'})
        assert r.status_code == 201, r.text
        await ctrl.flush()
        started = time.perf_counter()
        for i in range(CREATES):
            r = await c.post("/rules", json={"id": f"{tag}-{i}", "actions": ["fake:a1"],
                                             "sql": f'SELECT payload.v AS v FROM "{tag}/{i}"'})
            assert r.status_code == 201, r.text
        elapsed = time.perf_counter() - started
        await ctrl.flush()
    return elapsed / CREATES


async def test_a_create_costs_the_same_with_10000_rules(plugins, tmp_path, keys):
    reset_fakes()
    first = await instance(plugins, tmp_path, 100)
    small = await seconds_per_create(first, keys, "small")
    await first.app.stop()
    ctrl = await instance(plugins, tmp_path, 10_000)
    large = await seconds_per_create(ctrl, keys, "large")
    print(f"per create: {small * 1000:.1f} ms with 100 rules, "
          f"{large * 1000:.1f} ms with 10,000 rules")
    # Generous: the cost before was about a hundred times higher with 10,000 rules.
    assert large < 5 * small + 0.005
    app = ctrl.app
    assert len(app.rules) == 10_000 + 1 + 1 + CREATES
    publish(app, f"large/{CREATES - 1}", b'{"v": 1}')
    publish(app, "pre/9999/x", b'{"v": 2}')
    assert [out["v"] for _, _, out in FakeAction.received] == [1, 2]
    saved = await on_disk(ctrl, ctrl.path)
    assert saved == ctrl.data
    assert len(saved["rules"]) == len(app.rules)
    await ctrl.app.stop()


async def test_incremental_routing_matches_a_rebuild(client, controller):
    app = controller.app
    steps = [
        ("post", "/rules", {"id": "a", "sql": 'SELECT payload.v AS v FROM "x/#", "y/+"',
                            "actions": ["fake:a1"]}),
        ("post", "/rules", {"id": "b", "sql": 'SELECT payload.v AS v FROM "x/#"',
                            "actions": ["fake:a1"]}),
        ("put", "/rules/a", {"sql": 'SELECT payload.v AS v FROM "z/1"'}),
        ("put", "/rules/b", {"enable": False}),
        ("put", "/rules/r1", {"description": "same SQL, same routing"}),
        ("delete", "/rules/a", None),
        ("put", "/rules/b", {"enable": True}),
    ]
    for method, path, body in steps:
        kwargs = {} if body is None else {"json": body}
        r = await client.request(method.upper(), path, **kwargs)
        assert r.status_code < 300, (path, r.text)
        assert app.topic_filters == {
            f for rule in app.rules.values() for f in rule.compiled.topic_filters}
    assert app.topic_filters == {"t/#", "x/#"}
    reset_fakes()
    for topic in ("x/1", "y/1", "z/1", "t/1"):
        publish(app, topic, b'{"v": 1}')
    # b (x/#) and r1 (t/#) run; a is gone, so y/1 and z/1 match nothing.
    assert len(FakeAction.received) == 2


async def test_the_rule_keeps_its_counters_when_its_sql_changes(client, controller):
    app = controller.app
    publish(app, "t/1", b'{"v": 1}')
    assert app.rules["r1"].metrics.snapshot()["matched"] == 1
    r = await client.put("/rules/r1", json={"sql": 'SELECT payload.v AS v FROM "u/#"'})
    assert r.status_code == 200, r.text
    publish(app, "u/1", b'{"v": 1}')
    publish(app, "t/1", b'{"v": 1}')
    assert app.rules["r1"].metrics.snapshot()["matched"] == 2
    assert r.json()["from"] == ["u/#"]


async def test_a_rule_with_inline_actions_builds_and_removes_them(client, controller):
    app = controller.app
    r = await client.post("/rules", json={
        "id": "inl", "sql": 'SELECT payload.v AS v FROM "i/#"',
        "actions": [{"function": "republish", "args": {"topic": "out/inl"}}]})
    assert r.status_code == 201, r.text
    assert "republish:inl.0" in app.actions
    assert "i/#" in app.topic_filters
    r = await client.delete("/rules/inl")
    assert r.status_code == 204
    assert "republish:inl.0" not in app.actions
    assert "inl" not in app.rules
    assert "i/#" not in app.topic_filters


async def test_the_file_gets_the_last_of_a_burst(client, controller, config_file):
    for i in range(30):
        r = await client.post("/rules", json={"id": f"burst{i}", "sql": 'SELECT 1 FROM "b"'})
        assert r.status_code == 201, r.text
    r = await client.delete("/rules/burst0")
    assert r.status_code == 204
    await controller.flush()
    saved = yaml.safe_load(config_file.read_text())
    assert "burst0" not in saved["rules"]
    assert {f"burst{i}" for i in range(1, 30)} <= set(saved["rules"])

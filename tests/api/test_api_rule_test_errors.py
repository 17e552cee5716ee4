"""The rule tester answers whatever the tested rule, its functions or its templates raise with
the error's text (400, or per action in a 200), never a 500; it runs off the event loop with a
time limit."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mqferry._api.errors import ApiError
from mqferry._api.tester import RuleTestRunner


@pytest.mark.parametrize(("kind", "name"), [("type", "TypeError"), ("zero", "ZeroDivisionError"),
                                            ("recursion", "RecursionError")])
async def test_a_function_raising_anything_answers_400_with_its_text(client, kind, name):
    sql = f"SELECT fake_raise('{kind}') AS x FROM \"t/#\""
    r = await client.post("/rule_test", json={"sql": sql, "context": {"payload": "{}"}})
    assert (r.status_code, r.json()["code"]) == (400, "BAD_REQUEST"), r.text
    assert f"fake_raise({kind})" in r.json()["message"]
    created = await client.post("/rules", json={"id": f"raise_{kind}", "sql": sql,
                                                "actions": ["fake:a1"]})
    assert created.status_code == 201, created.text
    r = await client.post(f"/rules/raise_{kind}/test", json={"context": {"payload": "{}"}})
    assert r.status_code == 400, r.text
    assert f"fake_raise({kind})" in r.json()["message"]


async def test_a_template_raising_is_shown_per_action(client):
    created = await client.post("/rules", json={
        "id": "boom", "sql": 'SELECT payload.b AS boom FROM "t/#"', "actions": ["fake:a1"]})
    assert created.status_code == 201, created.text
    r = await client.post("/rules/boom/test", json={"context": {"payload": '{"b": 1}'}})
    assert r.status_code == 200, r.text
    [action] = r.json()["actions"]
    assert action["action"] == "fake:a1"
    assert action["rendered"] == [{"error": "TypeError: cannot render 1"}]


async def test_a_payload_without_a_json_form_is_a_400(client):
    r = await client.post("/rule_test", content=(
        b'{"sql": "SELECT payload.v AS v FROM \\"t/#\\"", '
        b'"context": {"payload": {"v": 123456789012345678901234567890}}}'),
        headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith("context.payload:")


async def test_the_evaluation_runs_off_the_event_loop(client):
    # fake_sleep blocks its thread for 0.5 s; the loop meanwhile keeps ticking.
    ticks = 0
    stop = asyncio.Event()

    async def tick():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    r = await client.post("/rule_test", json={"sql": 'SELECT fake_sleep(0.5) AS s FROM "t/#"',
                                              "context": {}})
    stop.set()
    await ticker
    assert (r.status_code, r.json()) == (200, {"s": 0.5})
    assert ticks >= 10


async def test_a_test_over_its_time_is_answered_and_extra_tests_are_refused():
    tester = RuleTestRunner(workers=1, timeout=0.2)
    release = threading.Event()
    started = time.monotonic()
    with pytest.raises(ApiError) as timed_out:
        await tester.run(lambda: release.wait(10))
    assert time.monotonic() - started < 5
    assert (timed_out.value.status, timed_out.value.code) == (400, "TIMEOUT")
    assert "0.2s" in timed_out.value.message
    # The runaway test still holds the only worker: the next one waits for it, then is refused.
    with pytest.raises(ApiError) as busy:
        await tester.run(lambda: 1)
    assert busy.value.status == 503
    release.set()
    for _ in range(100):
        await asyncio.sleep(0.02)
        try:
            assert await tester.run(lambda: 2) == 2
            break
        except ApiError:
            continue
    else:
        raise AssertionError("the worker was never released")


@pytest.mark.parametrize(("pattern", "message"), [
    ("(a", "invalid regular expression '(a': missing )"),
    ("((a{1000}){1000}){1000}", "regular expression '((a{1000}){1000}){1000}' refused: its "
                                "counted repetitions repeat a part 1000000 times"),
])
async def test_an_invalid_literal_pattern_is_refused_with_the_rule(client, pattern, message):
    sql = f"SELECT regex_match(payload, '{pattern}') AS m FROM \"t/#\""
    r = await client.post("/rule_test", json={"sql": sql, "context": {"payload": "aaa"}})
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    created = await client.post("/rules", json={"id": "re", "sql": sql, "actions": ["fake:a1"]})
    assert created.status_code == 400, created.text
    assert message in created.json()["message"]

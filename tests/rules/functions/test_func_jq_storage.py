import threading
import time

import psutil
import pytest

from mqferry._rules import RuleEvalError, evaluate_sql
from mqferry._rules.functions import jqfuncs

RUNAWAY = "jq('def f: f; f', payload, {timeout})"


def run(expr, payload='{"temperature": 10, "sensors": [1, 2, 3]}'):
    out = evaluate_sql(f'SELECT {expr} AS v FROM "t/#"', {"topic": "t/1", "payload": payload})
    return out["v"]


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("jq('.', '{\"temperature\": 10}')", [{"temperature": 10}]),
        ("jq('.temperature', '{\"temperature\": 10}')", [10]),
        ("jq('.temperature,(.temperature * 1.8 + 32)', '{\"temperature\": 10}')", [10, 50]),
        ("jq('.sensors | add', payload)", [6]),
        ("jq('.[]', json_decode('[1, 2]'))", [1, 2]),
        ("jq('{c: .temperature}', payload, 1000)", [{"c": 10}]),
    ],
)
def test_jq_returns_the_list_of_results(expr, want):
    assert run(expr) == want


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("jq('.[', payload)", "invalid jq program"),
        ("jq('.', 'not json')", "not valid JSON"),
        ("jq('error(\"boom\")', payload)", "jq program failed"),
        ("jq('def f: f; f', payload, 200)", "timed out after 200 ms"),
        ("jq('.', payload, 0)", "timeout must be positive"),
    ],
)
def test_jq_errors_are_rule_exceptions(expr, message):
    with pytest.raises(RuleEvalError, match=message):
        run(expr)


def _workers() -> set[int]:
    """PIDs of the live jq worker processes, as the operating system lists them."""
    found = set()
    for child in psutil.Process().children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "spawn_main" in " ".join(child.cmdline()):
                found.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return found


def test_the_callers_timeout_is_capped(monkeypatch):
    monkeypatch.setattr(jqfuncs, "MAX_TIMEOUT_MS", 300)
    for expr in (RUNAWAY.format(timeout=3_600_000), "jq('def f: f; f', payload)"):
        began = time.monotonic()
        with pytest.raises(RuleEvalError, match="timed out after 300 ms"):
            run(expr)
        # 300 ms of running, plus starting a worker the first time
        assert time.monotonic() - began < 5


def test_a_timed_out_worker_is_killed_and_replaced():
    assert run("jq('.temperature', payload)") == [10]
    before = _workers()
    assert before
    # each call takes an idle worker first, so this many runaways kill every worker there was
    for _ in range(jqfuncs.MAX_WORKERS):
        with pytest.raises(RuleEvalError, match="timed out after 200 ms"):
            run(RUNAWAY.format(timeout=200))
    assert not any(psutil.pid_exists(pid) for pid in before)
    assert run("jq('.temperature', payload)") == [10]
    after = _workers()
    assert after
    assert not after & before


def test_calls_from_many_threads_get_their_own_answers():
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(20):
                got = run(f"jq('.x + {i}', '{{\"x\": {n}}}')")
                assert got == [n + i]
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert not any(t.is_alive() for t in threads)


def test_a_runaway_program_does_not_hold_other_threads():
    failed: list[str] = []

    def runaway() -> None:
        try:
            run(RUNAWAY.format(timeout=3000))
        except RuleEvalError as exc:
            failed.append(str(exc))

    hostile = threading.Thread(target=runaway)
    hostile.start()
    time.sleep(0.2)
    for i in range(10):
        assert run(f"jq('.temperature + {i}', payload)") == [10 + i]
    assert hostile.is_alive()  # the good calls were done while it still ran
    hostile.join(30)
    assert failed and "timed out after 3000 ms" in failed[0]


def test_mongo_date():
    assert run("mongo_date(1700000000123)") == 'ISODate("2023-11-14T22:13:20.123Z")'
    assert run("mongo_date(1700000000, 'second')") == 'ISODate("2023-11-14T22:13:20.000Z")'
    assert run("mongo_date()").startswith('ISODate("20')
    with pytest.raises(RuleEvalError, match="unknown time unit"):
        run("mongo_date(1, 'week')")


def test_map_to_redis_hset_args():
    payload = '{"a": 1, "b": "x", "c": {"d": true}, "e": null}'
    got = run("map_to_redis_hset_args(json_decode(payload))", payload)
    assert got == ["a", "1", "b", "x", "c", '{"d":true}']


ORPHAN = """
import sys
import psutil
from mqferry._rules import evaluate_sql

def run(expr):
    return evaluate_sql(f'SELECT {expr} AS v FROM "t/#"', {"topic": "t/1", "payload": "{}"})

if __name__ == "__main__":  # the workers are spawned: they import this file again
    run("jq('.', payload)")
    print(" ".join(str(c.pid) for c in psutil.Process().children()), flush=True)
    run("jq('def f: f; f', payload, 2000)")
"""


def test_a_worker_left_by_a_killed_mqferry_ends_by_itself(tmp_path):
    # mqferry killed with SIGKILL mid-program cannot kill its jq worker: the worker's own alarm
    # ends it once the program's timeout (plus a grace) has passed.
    import subprocess
    import sys

    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers: list[int] = []
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert workers, "the script started no jq worker"
        time.sleep(0.5)  # the runaway program is running in a worker
        proc.kill()
        proc.wait(10)
        deadline = time.monotonic() + 2.0 + jqfuncs.ORPHAN_GRACE_S + 3.0
        while time.monotonic() < deadline and any(_running(p) for p in workers):
            time.sleep(0.1)
        assert not any(_running(p) for p in workers)
    finally:
        proc.kill()
        proc.wait(10)
        proc.stdout.close()
        for pid in workers:
            if _running(pid):
                psutil.Process(pid).kill()


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False

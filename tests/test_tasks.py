"""The supervisor of background loops, and a walk of the code for unsupervised tasks."""

from __future__ import annotations

import ast
import asyncio
import itertools
import logging
from pathlib import Path

import pytest

from mqferry import Supervisor
from mqferry._tasks import Supervisors, cancel_task


async def test_a_dying_loop_is_reported_and_restarted_with_growing_delays():
    runs: list[float] = []
    failures: list[tuple[str, float]] = []
    done = asyncio.Event()

    async def loop() -> None:
        runs.append(asyncio.get_running_loop().time())
        if len(runs) < 4:
            raise TypeError(f"poison {len(runs)}")
        done.set()
        await asyncio.Event().wait()

    sup = Supervisor("mqferry[test].loop", loop, min_delay=0.02, max_delay=1.0,
                     on_failure=lambda exc, delay: failures.append((repr(exc), delay)))
    sup.start()
    await asyncio.wait_for(done.wait(), 5)
    assert sup.running and sup.failures == 3
    assert [f for f, _ in failures] == [repr(TypeError(f"poison {i}")) for i in (1, 2, 3)]
    # each delay is jittered in [d/2, d] with d doubling: 0.02, 0.04, 0.08
    for (_, delay), base in zip(failures, (0.02, 0.04, 0.08), strict=True):
        assert base / 2 <= delay <= base
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert all(gap >= 0.9 * d for gap, (_, d) in zip(gaps, failures, strict=True))
    await sup.stop()
    assert not sup.running


async def test_the_death_is_logged_with_its_traceback_under_the_task_name(caplog):
    async def loop() -> None:
        raise ValueError("bad record")

    sup = Supervisor("mqferry[test].tb", loop, min_delay=10)
    with caplog.at_level(logging.ERROR, logger="mqferry._tasks"):
        sup.start()
        for _ in range(20):
            await asyncio.sleep(0)
            if caplog.records:
                break
    [rec] = caplog.records
    assert "mqferry[test].tb" in rec.getMessage() and "ValueError('bad record')" in rec.getMessage()
    assert rec.exc_info is not None and rec.exc_info[0] is ValueError
    await sup.stop()  # cancels the pending restart at once
    assert not sup.running


async def test_a_loop_that_returns_is_finished_and_not_restarted():
    calls = []

    async def loop() -> None:
        calls.append(1)

    sup = Supervisor("mqferry[test].once", loop, min_delay=0.01)
    sup.start()
    await asyncio.sleep(0.05)
    assert calls == [1] and not sup.running and sup.failures == 0


async def test_a_failing_failure_handler_does_not_stop_the_restarts():
    calls = []

    async def loop() -> None:
        calls.append(1)
        raise RuntimeError("x")

    def handler(exc: BaseException, delay: float) -> None:
        raise KeyError("handler bug")

    sup = Supervisor("mqferry[test].handler", loop, min_delay=0.01, max_delay=0.01,
                     on_failure=handler)
    sup.start()
    await asyncio.sleep(0.2)
    assert len(calls) >= 3 and sup.running
    await sup.stop()


async def test_stop_cancels_a_running_loop_and_the_task_keeps_its_name():
    started = asyncio.Event()

    async def loop() -> None:
        started.set()
        await asyncio.Event().wait()

    sup = Supervisor("mqferry[test].named", loop)
    sup.start()
    await started.wait()
    names = {t.get_name() for t in asyncio.all_tasks()}
    assert "mqferry[test].named" in names
    await sup.stop()
    await sup.stop()  # idempotent
    assert "mqferry[test].named" not in {t.get_name() for t in asyncio.all_tasks()}


async def test_a_dead_loop_is_a_problem_until_its_restart_has_run_long_enough():
    runs = []

    async def loop() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise OSError("disk gone")
        await asyncio.Event().wait()

    sup = Supervisor("mqferry[test].heal", loop, min_delay=0.01, healthy_after=0.3)
    assert sup.problem() is None
    sup.start()
    for _ in range(50):
        await asyncio.sleep(0.01)
        if len(runs) == 2:
            break
    problem = sup.problem()
    assert problem is not None and "mqferry[test].heal" in problem
    assert "OSError('disk gone')" in problem and "1x" in problem
    await asyncio.sleep(0.35)  # the restarted run has lasted healthy_after
    assert sup.problem() is None
    await sup.stop()


async def test_a_group_reports_the_owners_of_dead_loops_and_stops_them_all():
    async def dies() -> None:
        raise KeyError("k")

    async def lives() -> None:
        await asyncio.Event().wait()

    group = Supervisors()
    group.add("source:a", "mqferry[test].dies", dies, min_delay=5)
    group.add("mqtt", "mqferry[test].lives", lives)
    with pytest.raises(ValueError, match="already"):
        group.add("mqtt", "mqferry[test].lives", lives)
    group.start()
    for _ in range(50):
        await asyncio.sleep(0.01)
        if group.problems():
            break
    assert list(group.problems()) == ["source:a"]
    [(name, reason)] = group.problems()["source:a"]
    assert name == "mqferry[test].dies" and "KeyError('k')" in reason
    await group.stop()
    assert not any(sup.running for sup in group) and group.problems() == {}


# -- every background task is supervised ------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "core" / "mqferry", *(ROOT / "plugins").glob("*/mqferry_*")]

#: Tasks created without a Supervisor, each with why that is right. Keys: (file relative to the
#: repository, enclosing function).
ALLOWED = {
    ("core/mqferry/_tasks.py", "Supervisor.start"):
        "the supervisor's own task",
    ("plugins/kafka_producer/mqferry_kafka_producer/action.py", "KafkaProducerAction._replay"):
        "reading the disk buffer in a worker thread, awaited; if the wait is cancelled, a done "
        "callback closes what the read opened (its errors reach the awaiting open)",
    ("core/mqferry/_runtime/run.py", "run_app.on_hup"):
        "one reload per SIGHUP; _reload logs its own failure",
    ("core/mqferry/_cluster/shared.py", "SharedLog._restate_soon"):
        "one restatement per rejected record, after a short delay; it logs its own failure",
    ("core/mqferry/_api/server.py", "ApiServer.start"):
        "uvicorn's serve: start() reports a server that dies on start-up; restarting it would "
        "need the listening socket again",
    ("core/mqferry/_runtime/reconfig/apply.py", "_bounded"):
        "a component's start or stop during a reconfiguration, awaited with a bound",
    ("plugins/kafka_consumer/mqferry_kafka_consumer/handler.py", "RecordHandler._handle"):
        "one dispatch per record (when the runtime has no dispatch_nowait), watched by the "
        "record's slot: its failure is counted and settles the record",
    ("plugins/kafka_consumer/mqferry_kafka_consumer/deadletter.py", "DeadLetter.send"):
        "one send per record, watched by the record's slot: its failure is counted",
    ("plugins/republish/mqferry_republish/action.py", "RepublishAction.submit"):
        "one publish per rule output; _publish settles the delivery whatever happens",
    ("plugins/kafka_producer/mqferry_kafka_producer/partitions.py", "TopicLookups.request"):
        "one topic lookup at a time, started on demand; its loop catches every error and "
        "retries with back-off, so no topic is left pending",
    ("plugins/kafka_producer/mqferry_kafka_producer/records.py", "RecordBuffer.persist"):
        "one disk write in a worker thread, shielded so that a cancelled caller never abandons "
        "it half-way; its done-callback settles its records whatever the outcome (an error "
        "leaves them queued and is raised to the caller), and the next persist waits for it",
    ("plugins/kafka_producer/mqferry_kafka_producer/session.py", "ProducerSession._stop"):
        "the producer's close, awaited with a bound; one that overruns is kept and logged "
        "when it ends",
}


def _task_calls(root: Path = ROOT, sources: list[Path] = SOURCES) -> set[tuple[str, str]]:
    found = set()
    for base in sources:
        for path in base.rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            rel = path.relative_to(root).as_posix()

            def walk(node: ast.AST, scope: tuple[str, ...], rel: str = rel) -> None:
                for child in ast.iter_child_nodes(node):
                    inner = scope
                    if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                        inner = (*scope, child.name)
                    if isinstance(child, ast.Call):
                        f = child.func
                        name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
                        if name in ("create_task", "ensure_future", "TaskGroup"):
                            found.add((rel, ".".join(scope)))
                    walk(child, inner)

            walk(tree, ())
    return found


def test_every_background_task_is_supervised_or_accounted_for():
    calls = _task_calls()
    assert ("core/mqferry/_tasks.py", "Supervisor.start") in calls  # the walk sees tasks
    unexplained = sorted(calls - set(ALLOWED))
    assert not unexplained, (
        "tasks created outside mqferry.Supervisor (supervise them, or add them to ALLOWED "
        f"with the reason): {unexplained}")


@pytest.mark.parametrize("source", [
    "async def f():\n    asyncio.create_task(g())\n",
    "def f(loop):\n    loop.create_task(g())\n",
    "async def f():\n    asyncio.ensure_future(g())\n",
])
def test_the_walk_finds_each_way_of_making_a_task(source, tmp_path):
    pkg = tmp_path / "core" / "mqferry"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text(source)
    assert _task_calls(tmp_path, [pkg]) == {("core/mqferry/mod.py", "f")}


async def test_a_cancellation_nobody_asked_for_is_a_death_and_the_loop_restarts():
    # A library that cancels its own task and awaits it lets that CancelledError out (aiokafka's
    # consumer stop does); the loop must not end as if its owner had stopped it.
    runs: list[int] = []
    failures: list[BaseException] = []
    restarted = asyncio.Event()

    async def loop() -> None:
        runs.append(1)
        if len(runs) == 1:
            inner = asyncio.get_running_loop().create_task(asyncio.sleep(10))
            await asyncio.sleep(0)
            inner.cancel()
            await inner  # raises the inner task's CancelledError here
        restarted.set()
        await asyncio.Event().wait()

    sup = Supervisor("mqferry[test].stray", loop, min_delay=0.01,
                     on_failure=lambda exc, delay: failures.append(exc))
    sup.start()
    await asyncio.wait_for(restarted.wait(), 5)
    assert sup.running and sup.failures == 1 and len(runs) == 2
    [exc] = failures
    assert "cancellation nobody asked for" in str(exc)
    assert isinstance(exc.__cause__, asyncio.CancelledError)
    assert "mqferry[test].stray" in (sup.problem() or "")
    await sup.stop()  # the owner's own cancellation still stops it
    assert not sup.running and sup.failures == 1


async def test_cancel_task_swallows_the_tasks_cancellation_not_its_callers():
    cleaned = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(60)  # a clean-up that takes long
            cleaned.set()

    task = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    # The caller's own deadline ends its wait: it is not swallowed as the task's cancellation.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await cancel_task(task)
    assert task.done() and not cleaned.is_set()

    quick = asyncio.create_task(asyncio.sleep(60))
    await asyncio.sleep(0)
    await cancel_task(quick)  # the task's cancellation: swallowed
    assert quick.cancelled()


async def test_a_task_being_cancelled_still_stops_everything_in_its_clean_up():
    """Its pending cancellation is not taken for one arriving while each stop waits."""
    loops = [Supervisor(f"t.loop{i}", lambda: asyncio.sleep(60)) for i in range(3)]
    stopped: list[bool] = []

    async def owner() -> None:
        for sup in loops:
            sup.start()
        try:
            await asyncio.sleep(60)
        finally:  # as run_app's shutdown after Ctrl-C cancelled the main task
            for sup in loops:
                await sup.stop()
                stopped.append(not sup.running)

    task = asyncio.create_task(owner())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stopped == [True, True, True]

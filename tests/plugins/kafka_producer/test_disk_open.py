"""Opening an action's disk buffer: never fails the start, and what is on disk is always sent.

A directory that cannot be used, or that this process still holds (the action being replaced
has not closed it), is tried again with back-off while the action runs: the records for the disk
wait in memory, unsecured, and the health says why. An action in memory mode sends what a disk
or hybrid buffer of its name left, and buffers new records in memory.
"""

import asyncio
import logging
import subprocess
import sys
import textwrap
import threading

import pytest

from mqferry import DiskBufferInUseError, DiskQueue
from mqferry.testing import wait_until
from mqferry_kafka.testing import KafkaTwin
from tests.plugins.kafka_producer.test_disk_buffer import DownKafka, send

ACTION_DEFAULTS = {"buffer": {"mode": "disk"}}


async def _left_on_disk(make, values):
    """Records a disk-buffered action kept when it stopped with Kafka down."""
    down = DownKafka(topics={"t": 1})
    action = make(down)
    await action.start()
    send(action, *values)
    await action.stop(timeout=0.5)
    assert DiskQueue.count(action.disk_directory) == len(values)
    return action.disk_directory


async def test_a_memory_buffer_sends_what_a_disk_buffer_of_its_name_left(make, caplog):
    directory = await _left_on_disk(make, ["a", "b", "c"])
    kafka = KafkaTwin(topics={"t": 1})
    action = make(kafka, buffer={"mode": "memory"})
    with caplog.at_level(logging.INFO):
        await action.start()
    try:
        [d] = send(action, "new")
        assert action.buffer.to_persist == []  # new records stay in memory
        await wait_until(lambda: sorted(kafka.values("t")) == [b"a", b"b", b"c", b"new"])
        assert "replaying 3 records from the disk buffer" in caplog.text
        await wait_until(lambda: action.buffer.disk is None)  # drained, closed
        assert DiskQueue.count(directory) == 0
        # and emptied: a later start in memory mode has no segment file to open
        assert not DiskQueue.has_segments(directory)
        assert action.metrics.get("success") == 4 and d.outcome == "secured"
    finally:
        await action.stop(timeout=1.0)


async def test_a_memory_buffer_without_leftovers_creates_no_directory(running, tmp_path):
    await running(KafkaTwin(topics={"t": 1}), buffer={"mode": "memory"})
    assert not (tmp_path / "kafka_producer").exists()


async def test_an_unusable_directory_fails_no_start_and_is_tried_again(make, settled, caplog):
    kafka = KafkaTwin(topics={"t": 1})
    action = make(kafka)
    directory = action.disk_directory
    directory.parent.mkdir(parents=True)
    directory.write_text("in the way")
    with caplog.at_level(logging.WARNING):
        await action.start()
    try:
        ds = send(action, "a", "b")
        await asyncio.sleep(0.3)
        assert [d.outcome for d in ds] == [None, None]  # unsecured: their MQTT acks wait
        assert kafka.values("t") == []
        health = await action.health()
        assert health.status.value == "disconnected"
        assert f"disk buffer {directory}: cannot be used" in health.reason
        assert action.metrics.get("disk_open_errors") >= 2  # retried
        warned = [r for r in caplog.records if "cannot be used" in r.getMessage()]
        assert len(warned) == 1  # at most once per 10 s
        directory.unlink()
        assert await settled(*ds) == ["secured"] * 2
        await wait_until(lambda: kafka.values("t") == [b"a", b"b"])
        assert (await action.health()).status.value == "connected"
    finally:
        await action.stop(timeout=1.0)


@pytest.mark.parametrize("mode", ["disk", "memory"])
async def test_a_directory_this_process_holds_is_opened_once_released(make, settled, mode):
    directory = await _left_on_disk(make, ["old"])
    held = DiskQueue(directory, segment_bytes=4096)  # the action being replaced, say
    kafka = KafkaTwin(topics={"t": 1})
    action = make(kafka, buffer={"mode": mode})
    await action.start()
    try:
        [d] = send(action, "new")
        await asyncio.sleep(0.3)
        assert b"old" not in kafka.values("t")
        health = await action.health()
        assert health.status.value == "disconnected" and "in use by this process" in (
            health.reason)
        held.close()
        assert await settled(d) == ["secured"]
        await wait_until(lambda: sorted(kafka.values("t")) == [b"new", b"old"])
    finally:
        held.close()
        await action.stop(timeout=1.0)


@pytest.fixture
def held_elsewhere(make):
    """An action whose disk buffer directory another process holds, and that process."""
    action = make(KafkaTwin(topics={"t": 1}))
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from mqferry import DiskQueue
        q = DiskQueue(Path({str(action.disk_directory)!r}), segment_bytes=4096)
        print("open", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        yield action, holder
    finally:
        holder.kill()
        holder.communicate()


async def test_a_directory_another_process_holds_fails_the_start(held_elsewhere):
    action, holder = held_elsewhere
    # two instances given one data_dir: an operator's error, which `mqferry run` exits on
    with pytest.raises(DiskBufferInUseError, match=f"in use by process {holder.pid}"):
        await action.start()
    assert action.metrics.get("disk_open_errors") == 0


@pytest.fixture
def slow_read(monkeypatch):
    """``slow_read()``: from then on, reading a disk buffer blocks its worker thread until the
    test sets ``go``; returns ``(reading, go)``."""
    from mqferry_kafka_producer import ondisk
    go, reading = threading.Event(), threading.Event()
    real = ondisk.decode

    def blocked(disk, clock):
        reading.set()
        go.wait(10)
        return real(disk, clock)

    def install():
        monkeypatch.setattr(ondisk, "decode", blocked)
        return reading, go
    yield install
    go.set()


async def test_a_disk_buffer_is_read_off_the_event_loop(make, slow_read):
    await _left_on_disk(make, ["a", "b"])
    reading, go = slow_read()
    kafka = KafkaTwin(topics={"t": 1})
    action = make(kafka)
    start = asyncio.create_task(action.start())
    try:
        await wait_until(reading.is_set)
        ticks = 0
        for _ in range(5):  # the loop runs while the worker thread reads
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 5 and not start.done()
        go.set()
        await start
        await wait_until(lambda: kafka.values("t") == [b"a", b"b"])
    finally:
        go.set()
        await action.stop(timeout=1.0)


async def test_a_read_cancelled_by_a_stop_leaves_the_directory_free(make, slow_read):
    directory = await _left_on_disk(make, ["a"])
    reading, go = slow_read()
    action = make(KafkaTwin(topics={"t": 1}))
    start = asyncio.create_task(action.start())
    await wait_until(reading.is_set)
    start.cancel()
    go.set()
    with pytest.raises(asyncio.CancelledError):
        await start
    # the queue the worker thread opened is closed once it finished reading
    await wait_until(lambda: _opens(directory))
    assert DiskQueue.count(directory) == 1  # nothing was taken from it


def _opens(directory):
    try:
        DiskQueue(directory, segment_bytes=1 << 20).close()
    except DiskBufferInUseError:
        return False
    return True

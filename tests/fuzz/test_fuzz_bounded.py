"""User-supplied work is bounded: a runaway regex, a slow jq program or a decompression bomb in
one message neither freezes the event loop nor stops the stream.

Each case measures the longest gap between the ticks of a 10 ms heartbeat task while the message
is handled and settled: the time the loop could not serve anything else.
"""

from __future__ import annotations

import asyncio
import gzip
import tempfile
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest

from tests.fuzz.test_fuzz_mqtt_to_kafka import check_stream
from tests.fuzz.twins import Harness, harness

pytestmark = pytest.mark.fuzz

#: 24 characters: a backtracking engine takes about a second on the machines this runs on, and
#: doubles with each added character (issue #12: 28 characters froze the process for 7.7 s).
RUNAWAY = b"a" * 24 + b"!"


class Heartbeat:
    """The longest the event loop went without running a 10 ms ticker."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _beat(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.longest = max(self.longest, now - last)
            last = now

    async def __aenter__(self) -> Heartbeat:
        self._task = asyncio.create_task(self._beat())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.sleep(0.02)  # one more beat, to see the last gap
        assert self._task is not None
        self._task.cancel()


async def until_acked(h: Harness, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while h.unacked and time.monotonic() < deadline:
        await h.settle()
        await asyncio.sleep(0.01)


def run(rules: dict[str, object], case: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            h = await harness(Path(tmp), rules)
            try:
                await case(h)
            finally:
                await h.stop()
    asyncio.run(main())


def rule(sql: str) -> dict[str, object]:
    return {"r": {"sql": sql, "actions": ["kafka_producer:whole"]},
            "echo": {"sql": 'SELECT * FROM "#"', "actions": ["republish:echo"]},
            "whole": {"sql": 'SELECT * FROM "#"', "actions": ["kafka_producer:whole"]}}


@pytest.mark.parametrize("expr", [
    "regex_match(payload, '^(a+)+$')",
    "regex_replace(payload, '^(a+)+$', 'x')",
    "regex_extract(payload, '^(a+)+$')",
])
def test_a_runaway_regex_does_not_freeze_the_loop(expr):
    async def case(h: Harness) -> None:
        async with Heartbeat() as beat:
            h.publish("t/re", RUNAWAY)
            await until_acked(h, 30)
        assert beat.longest < 0.4, (
            f"{expr} on {len(RUNAWAY)} bytes blocked the event loop for {beat.longest:.2f} s")
        await check_stream(h, [])
    run(rule(f'SELECT {expr} as m FROM "t/#"'), case)


def test_a_slow_jq_program_does_not_freeze_the_loop_whatever_its_timeout():
    # The program comes from the payload: a first message starts the jq worker, so that its
    # start-up is not measured. The second runs for seconds (5e6 iterations), well past the
    # bound, so the outcome does not hang on the machine's speed. The 60 s timeout is the
    # rule's own argument (issue #12: the cap is the caller's, and the call blocks the loop
    # until then). Capping the timeout is not enough: the loop must not wait for the program.
    async def case(h: Harness) -> None:
        h.publish("t/jq", orjson.dumps({"p": ".", "n": 1}))
        await until_acked(h, 60)
        async with Heartbeat() as beat:
            h.publish("t/jq", orjson.dumps({"p": "last(range(.n))", "n": 5_000_000}))
            await until_acked(h, 90)
        assert beat.longest < 2.0, (
            f"a jq program blocked the event loop for {beat.longest:.2f} s")
        await check_stream(h, [])
    run(rule("SELECT jq(payload.p, payload, 60000) as j FROM \"t/#\""), case)


#: Bytes once decompressed: 4 times the 16 MiB the rule functions may build from one input.
BOMB = 64 * 1024 * 1024


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(("function", "compress"), [
    ("gunzip", lambda data: gzip.compress(data, 9)),
    ("unzip", deflate),
    ("zip_uncompress", lambda data: zlib.compress(data, 9)),
])
def test_a_decompression_bomb_is_bounded(function, compress):
    bomb = compress(b"\0" * BOMB)

    async def case(h: Harness) -> None:
        async with Heartbeat() as beat:
            h.publish("t/zip", bomb)
            await until_acked(h, 60)
        outputs = [orjson.loads(r[3] or b"{}") for r in h.kafka.records
                   if r[1] == "fuzz-whole" and (r[3] or b"").startswith(b'{"n"')]
        sizes = [o["n"] for o in outputs if isinstance(o.get("n"), int)]
        assert all(n < BOMB for n in sizes), (
            f"{function}() expanded {len(bomb):,} bytes into {max(sizes):,}")
        assert beat.longest < 1.0, f"{function}() blocked the loop for {beat.longest:.2f} s"
        await check_stream(h, [])
    run(rule(f'SELECT strlen({function}(payload)) as n FROM "t/#"'), case)

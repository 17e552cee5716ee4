"""How long the event loop stops serving, told apart from the machine pausing the whole process.

A 10 ms heartbeat on the loop records, for each gap between its ticks, the wall time, the CPU
time the loop's own thread spent, and the CPU time the whole process spent. A gap is the code's
fault when the loop thread worked through it (a call that blocks the loop), or when another of
our threads did while the loop could not run (a thread holding the GIL). A shared machine that
does not schedule us for half a second makes a long gap with little CPU in it: that is not a
stall of ours, and a wall-clock budget alone would fail on it.

What it cannot see: a loop blocked on a wait that spends no CPU anywhere in the process (a sleep,
a read from a slow disk). The tests using it guard against work done on the loop, or waited for
from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gap:
    wall: float
    loop_cpu: float
    process_cpu: float
    #: time spent in the garbage collector during the gap
    collecting: float = 0.0

    @property
    def ours(self) -> float:
        """The part of the gap our code can be blamed for."""
        return max(self.loop_cpu, min(self.wall, self.process_cpu))


@dataclass
class Gaps:
    gaps: list[Gap] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.gaps)

    def worst(self) -> Gap:
        return max(self.gaps, key=lambda g: g.ours)

    def check(self, budget: float) -> None:
        assert self.gaps, "the heartbeat never ticked"
        worst = self.worst()
        assert worst.ours < budget, (
            f"the loop stalled: a gap of {worst.wall:.3f}s, in which its thread worked "
            f"{worst.loop_cpu:.3f}s and the process {worst.process_cpu:.3f}s (of which "
            f"{worst.collecting:.3f}s collecting garbage)")


@contextlib.asynccontextmanager
async def loop_gaps(tick: float = 0.01) -> AsyncIterator[Gaps]:
    """The gaps between the ticks of a heartbeat on the running loop, while inside."""
    gaps = Gaps()
    stop = asyncio.Event()
    collecting = [0.0, 0.0]  # total, start of the current pass

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting[1] = time.perf_counter()
        else:
            collecting[0] += time.perf_counter() - collecting[1]

    async def heartbeat() -> None:
        wall, loop_cpu, process_cpu = time.monotonic(), time.thread_time(), time.process_time()
        collected = collecting[0]
        while not stop.is_set():
            await asyncio.sleep(tick)
            now = (time.monotonic(), time.thread_time(), time.process_time())
            gaps.gaps.append(Gap(now[0] - wall - tick, now[1] - loop_cpu,
                                 now[2] - process_cpu, collecting[0] - collected))
            wall, loop_cpu, process_cpu = now
            collected = collecting[0]

    # As `mqferry run` does once started (mqferry._runtime.run): what exists now is kept out
    # of the collector's full passes. Late in a test session the heap holds every earlier test's
    # leftovers, and one full pass over them took ~0.9 s of the loop's thread: the test
    # runner's heap, not the code under test.
    gc.collect()
    gc.freeze()
    gc.callbacks.append(timed)
    beat = asyncio.create_task(heartbeat())
    try:
        yield gaps
    finally:
        stop.set()
        await beat
        gc.callbacks.remove(timed)
        gc.unfreeze()

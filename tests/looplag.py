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
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Gap:
    wall: float
    loop_cpu: float
    process_cpu: float

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
            f"{worst.loop_cpu:.3f}s and the process {worst.process_cpu:.3f}s")


@contextlib.asynccontextmanager
async def loop_gaps(tick: float = 0.01) -> AsyncIterator[Gaps]:
    """The gaps between the ticks of a heartbeat on the running loop, while inside."""
    gaps = Gaps()
    stop = asyncio.Event()

    async def heartbeat() -> None:
        wall, loop_cpu, process_cpu = time.monotonic(), time.thread_time(), time.process_time()
        while not stop.is_set():
            await asyncio.sleep(tick)
            now = (time.monotonic(), time.thread_time(), time.process_time())
            gaps.gaps.append(Gap(now[0] - wall - tick, now[1] - loop_cpu,
                                 now[2] - process_cpu))
            wall, loop_cpu, process_cpu = now

    beat = asyncio.create_task(heartbeat())
    try:
        yield gaps
    finally:
        stop.set()
        await beat

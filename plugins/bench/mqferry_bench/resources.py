"""CPU time and peak resident memory of the processes under test (the bridge)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import psutil


@dataclass(frozen=True, slots=True)
class Usage:
    """What the watched processes used while they were watched.

    Attributes:
        cpu_s: user + system CPU seconds, summed over the processes.
        peak_rss_mb: the highest sum of resident set sizes seen, in MiB.
    """

    cpu_s: float
    peak_rss_mb: float

    def as_dict(self, delivered: int) -> dict[str, Any]:
        """A JSON-ready dict, with CPU seconds per 100,000 delivered messages."""
        per_100k = self.cpu_s * 100_000 / delivered if delivered else None
        return {"cpu_s": round(self.cpu_s, 2),
                "cpu_s_per_100k": None if per_100k is None else round(per_100k, 2),
                "peak_rss_mb": round(self.peak_rss_mb, 1)}


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


class ProcessWatch:
    """Samples the RSS of some processes every ``interval`` seconds and sums their CPU time.

    Args:
        pids: returns the pids to watch now; called at every sample, so a process that is
            restarted (a fault scenario) is picked up under its new pid.
        interval: seconds between samples.
    """

    def __init__(self, pids: Callable[[], Iterable[int]], interval: float = 0.2) -> None:
        self._pids = pids
        self._interval = interval
        self._procs: dict[int, psutil.Process] = {}
        self._cpu_start: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mqferry-bench-watch",
                                        daemon=True)

    def start(self) -> None:
        """Take the starting CPU times and begin sampling."""
        self._sample()
        self._thread.start()

    def stop(self) -> Usage:
        """Stop sampling; the CPU time used since :meth:`start` and the peak RSS."""
        self._stop.set()
        self._thread.join(5)
        self._sample()
        cpu = sum(self._cpu_last[p] - self._cpu_start[p] for p in self._cpu_last)
        return Usage(cpu, self._peak / 2**20)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def _sample(self) -> None:
        rss = 0
        for pid in self._pids():
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                    self._cpu_start[pid] = _cpu(proc)
                self._cpu_last[pid] = _cpu(proc)
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
        self._peak = max(self._peak, rss)

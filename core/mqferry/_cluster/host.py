"""What a node says about the machine and process it runs on: load, memory, uptime.

Read from the standard library and Linux's ``/proc`` (no extra dependency); a field the platform
does not give is left out rather than guessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import resource
import time
from pathlib import Path
from typing import Any

__all__ = ["host_stats", "pid_runs", "process_started"]


@functools.cache
def process_started() -> float:
    """When this process started, in epoch seconds (when the module was first asked, elsewhere)."""
    try:
        # Field 22 of /proc/self/stat is the start in clock ticks after boot; the file name
        # field (2) may hold spaces, hence the split after its closing parenthesis.
        fields = Path("/proc/self/stat").read_text().rpartition(")")[2].split()
        ticks = int(fields[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def _memory() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                out["memory_total"] = int(line.split()[1]) * 1024
                break
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        out["memory_used"] = pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        # Not Linux: the peak resident size is what the standard library knows (KiB on Linux
        # and the BSDs, bytes on macOS; this branch is not Linux).
        out["memory_used"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out


def host_stats() -> dict[str, Any]:
    """Load averages, memory (bytes: the machine's total, this process's resident size),
    the file descriptor limit and the number of asyncio tasks (EMQX's ``process_used``)."""
    out: dict[str, Any] = {}
    with contextlib.suppress(OSError):  # not every platform has load averages
        out["load1"], out["load5"], out["load15"] = (round(x, 2) for x in os.getloadavg())
    out.update(_memory())
    out["max_fds"] = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    with contextlib.suppress(RuntimeError):  # no running loop
        out["process_used"] = len(asyncio.all_tasks())
    return out


def pid_runs(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it runs, as another user
        return True
    except (OSError, ValueError, OverflowError):
        return False
    return True

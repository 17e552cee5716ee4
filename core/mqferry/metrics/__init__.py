"""Counters and gauges per rule, action and source, with EMQX's metric names."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable

RULE_COUNTERS = (
    "matched",
    "passed",
    "filtered",
    "failed",
    "failed.exception",
    "failed.no_result",
    "actions.total",
    "actions.success",
    "actions.failed",
)
ACTION_COUNTERS = (
    "matched",
    "success",
    "failed",
    "dropped",
    "dropped.queue_full",
    "dropped.expired",
    "retried",
    "late_reply",
)
SOURCE_COUNTERS = ("received", "success", "failed", "dropped")


class Metrics:
    """The counters and gauges of one component.

    Counters only grow (until :meth:`reset`); gauges (``queuing``, ``inflight``) are read from a
    callback when a snapshot is taken, so the hot path never updates them.

    Args:
        component_id: ``rule:<id>``, ``<type>:<name>``.
        counters: names that always appear in a snapshot, even at zero.
    """

    __slots__ = ("_counters", "_gauges", "_names", "component_id", "started_at")

    def __init__(self, component_id: str, counters: Iterable[str] = ()) -> None:
        self.component_id = component_id
        self._names = tuple(counters)
        self._counters: defaultdict[str, int] = defaultdict(int)
        self._gauges: dict[str, Callable[[], float]] = {}
        self.started_at = time.time()

    def inc(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name``."""
        self._counters[name] += n

    def get(self, name: str) -> int:
        """The value of counter ``name``."""
        return self._counters.get(name, 0)

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """Register a gauge read by ``read`` at snapshot time."""
        self._gauges[name] = read

    def reset(self) -> None:
        """Zero every counter."""
        self._counters.clear()
        self.started_at = time.time()

    def snapshot(self) -> dict[str, float]:
        """Every counter and gauge by name."""
        out: dict[str, float] = dict.fromkeys(self._names, 0)
        out.update(self._counters)
        for name, read in self._gauges.items():
            out[name] = read()
        return out


def rule_metrics(rule_id: str) -> Metrics:
    """Metrics of a rule, with EMQX's counters plus ``filtered`` for WHERE-false."""
    return Metrics(f"rule:{rule_id}", RULE_COUNTERS)


def action_metrics(action_id: str) -> Metrics:
    """Metrics of an action."""
    return Metrics(action_id, ACTION_COUNTERS)


def source_metrics(source_id: str) -> Metrics:
    """Metrics of a source."""
    return Metrics(source_id, SOURCE_COUNTERS)


__all__ = [
    "ACTION_COUNTERS",
    "RULE_COUNTERS",
    "SOURCE_COUNTERS",
    "Metrics",
    "action_metrics",
    "rule_metrics",
    "source_metrics",
]

"""Counters and gauges per rule, action and source, with EMQX's metric names."""

from __future__ import annotations

import time
from collections import defaultdict, deque
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

    __slots__ = ("_counters", "_gauges", "_names", "_rate", "component_id", "gauge_rate_of",
                 "started_at")

    def __init__(self, component_id: str, counters: Iterable[str] = (),
                 rate_of: str | None = None) -> None:
        self.component_id = component_id
        self._names = tuple(counters)
        self._counters: defaultdict[str, int] = defaultdict(int)
        self._gauges: dict[str, Callable[[], float]] = {}
        self._rate = Rate() if rate_of else None
        if rate_of:
            self._names += ("rate", "rate_max", "rate_last5m")
            self.gauge_rate_of = rate_of
        self.started_at = time.time()

    def tick(self, now: float | None = None) -> None:
        """Sample the rate counter; the runtime calls this about once a second."""
        if self._rate is not None:
            self._rate.sample(self._counters.get(self.gauge_rate_of, 0), now)

    def inc(self, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name``."""
        self._counters[name] += n

    def get(self, name: str) -> int:
        """The value of counter ``name``."""
        return self._counters.get(name, 0)

    def gauge(self, name: str, read: Callable[[], float]) -> None:
        """Register a gauge read by ``read`` at snapshot time."""
        self._gauges[name] = read

    def drop_gauge(self, name: str) -> None:
        """Forget gauge ``name`` (a revoked partition's lag, ...); no error if absent."""
        self._gauges.pop(name, None)

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
        if self._rate is not None:
            out.update(self._rate.figures())
        return out


class Rate:
    """Messages per second of a growing counter: now (last 5 s), the maximum, the last 5 minutes.

    ``rate`` and ``rate_max`` are EMQX's figures; ``rate_last5m`` is the average of the last five
    minutes.
    """

    __slots__ = ("_max", "_samples")

    WINDOW = 5.0
    LONG = 300.0

    def __init__(self) -> None:
        self._samples: deque[tuple[float, int]] = deque()
        self._max = 0.0

    def sample(self, value: int, now: float | None = None) -> None:
        """Record the counter's value at ``now`` (monotonic seconds)."""
        now = time.monotonic() if now is None else now
        self._samples.append((now, value))
        while self._samples and now - self._samples[0][0] > self.LONG:
            self._samples.popleft()
        self._max = max(self._max, self._over(self.WINDOW))

    def _over(self, seconds: float) -> float:
        if len(self._samples) < 2:
            return 0.0
        t1, v1 = self._samples[-1]
        t0, v0 = self._samples[0]
        for t, v in reversed(self._samples):
            if t1 - t > seconds:
                break
            t0, v0 = t, v
        return (v1 - v0) / (t1 - t0) if t1 > t0 else 0.0

    def figures(self) -> dict[str, float]:
        """``rate``, ``rate_max`` and ``rate_last5m``, rounded to 0.01."""
        return {"rate": round(self._over(self.WINDOW), 2), "rate_max": round(self._max, 2),
                "rate_last5m": round(self._over(self.LONG), 2)}


def rule_metrics(rule_id: str) -> Metrics:
    """Metrics of a rule, with EMQX's counters plus ``filtered`` for WHERE-false."""
    return Metrics(f"rule:{rule_id}", RULE_COUNTERS, rate_of="matched")


def action_metrics(action_id: str) -> Metrics:
    """Metrics of an action."""
    return Metrics(action_id, ACTION_COUNTERS, rate_of="matched")


def source_metrics(source_id: str) -> Metrics:
    """Metrics of a source."""
    return Metrics(source_id, SOURCE_COUNTERS, rate_of="received")


__all__ = [
    "ACTION_COUNTERS",
    "RULE_COUNTERS",
    "SOURCE_COUNTERS",
    "Metrics",
    "Rate",
    "action_metrics",
    "rule_metrics",
    "source_metrics",
]

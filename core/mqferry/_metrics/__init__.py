"""Counters and gauges per rule, action and source, with EMQX's metric names."""

from __future__ import annotations

import logging
import numbers
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from mypy_extensions import mypyc_attr

log = logging.getLogger(__name__)

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

#: The figures of :class:`Rate`, gauges in every snapshot of a component with a rate.
RATE_GAUGES = ("rate", "rate_max", "rate_last5m")

Labels = tuple[tuple[str, str], ...]


class Sample(NamedTuple):
    """One value of a component's metrics, typed, for an exposition such as Prometheus'.

    Attributes:
        name: the EMQX-style name (``matched``, ``failed.too_large``, ``lag``).
        labels: ``(label, value)`` pairs of one series of a gauge kept per series (``topic``,
            ``partition``); empty for everything else.
        value: the value now.
        gauge: True for a gauge (read now, goes up and down), False for a counter.
    """

    name: str
    labels: Labels
    value: float
    gauge: bool


#: when each failing gauge was last logged (monotonic), so a snapshot a second logs it once a minute
_warned: dict[str, float] = {}


def _read(owner: str, name: str, read: Callable[[], Any]) -> int | float | None:
    """A gauge's value now; None when it is not known, not a number, or its read raised."""
    try:
        value = read()
    except Exception as exc:
        _warn(owner, name, f"failed: {exc!r}")
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)  # a NumPy number, a Fraction
    if value is not None:
        _warn(owner, name, f"gave {value!r}, not a number")
    return None


def _warn(owner: str, name: str, what: str) -> None:
    key, now = f"{owner} {name}", time.monotonic()
    if now - _warned.get(key, -60.0) >= 60.0:
        _warned[key] = now
        log.warning("%s: the gauge %s %s; left out of its metrics", owner, name, what)


@mypyc_attr(allow_interpreted_subclasses=True)
class Metrics:
    """The counters and gauges of one component.

    Counters only grow (until :meth:`reset`); gauges (``queuing``, ``inflight``) are read from a
    callback when a snapshot is taken, so the hot path never updates them. A gauge can be kept per
    series (a source's ``lag`` per topic and partition) by registering it with ``labels``.

    Args:
        component_id: ``rule:<id>``, ``<type>:<name>``.
        counters: names that always appear in a snapshot, even at zero.
    """

    __slots__ = ("_counters", "_gauges", "_names", "_rate", "_series", "component_id",
                 "gauge_rate_of", "started_at")

    def __init__(self, component_id: str, counters: Iterable[str] = (),
                 rate_of: str | None = None) -> None:
        self.component_id = component_id
        self._names = tuple(counters)
        self._counters: defaultdict[str, int] = defaultdict(int)
        self._gauges: dict[tuple[str, Labels], Callable[[], Any]] = {}
        self._series: dict[str, tuple[str, ...]] = {}
        self._rate = Rate() if rate_of else None
        if rate_of:
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

    def gauge(self, name: str, read: Callable[[], float | None],
              labels: Mapping[str, str] | None = None) -> None:
        """Register a gauge read by ``read`` at snapshot time.

        Args:
            name: the gauge's name; a counter of the same name would be hidden by it, so a
                name among the component's counters is refused.
            read: returns the value now, or ``None`` when it is not known (left out of the
                snapshot; a read that raises is left out too, and logged).
            labels: for one series of a gauge declared with :meth:`series`, its label values
                by label name.
        """
        if name in self._names:
            raise ValueError(f"{self.component_id}: {name!r} is a counter, not a gauge")
        keys = self._series.get(name, ())
        if tuple(labels or ()) != keys:
            raise ValueError(f"{self.component_id}: gauge {name!r} takes the labels "
                             f"{list(keys)}, not {list(labels or ())}")
        self._gauges[(name, tuple((labels or {}).items()))] = read

    def series(self, name: str, labels: Iterable[str]) -> None:
        """Declare gauge ``name`` as kept per series (a source's lag per topic and partition).

        Each series is registered with :meth:`gauge` and these ``labels``. :meth:`snapshot` shows
        the total of the series under ``name`` (0 without any) and each series as
        ``<name>.<v1>:<v2>`` (label values in the declared order); :meth:`samples` gives each
        series with its labels, and no total (a sum is the exposition's job).
        """
        self._series[name] = tuple(labels)

    def drop_gauge(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Forget gauge ``name`` or one of its series (a revoked partition's lag, ...).

        No error if absent.
        """
        self._gauges.pop((name, tuple((labels or {}).items())), None)

    def reset(self) -> None:
        """Zero every counter."""
        self._counters.clear()
        self.started_at = time.time()

    def snapshot(self) -> dict[str, float]:
        """Every counter and gauge by name; a gauge series as ``<name>.<v1>:<v2>``."""
        out: dict[str, float] = dict.fromkeys(self._names, 0)
        out.update(self._counters)
        if self._rate is not None:
            out.update(dict.fromkeys(RATE_GAUGES, 0))
        out.update(dict.fromkeys(self._series, 0.0))
        for (name, labels), read in self._gauges.items():
            series = f"{name}.{':'.join(v for _, v in labels)}" if labels else name
            value = _read(self.component_id, series, read)
            if value is None:
                continue  # not known now (a lag before the first fetch), or the gauge failed
            if labels:
                out[name] += value
                out[series] = value
            else:
                out[name] = value
        if self._rate is not None:
            out.update(self._rate.figures())
        return out

    def samples(self) -> Iterator[Sample]:
        """Every counter and gauge, typed, with the labels of each gauge series."""
        gauges = {name for name, _ in self._gauges} | set(self._series)
        counters = dict.fromkeys(self._names, 0)
        counters.update(self._counters)
        for name, value in counters.items():
            if name not in gauges:  # a gauge hides a counter of its name, as in snapshot()
                yield Sample(name, (), float(value), gauge=False)
        for (name, labels), read in self._gauges.items():
            series = f"{name}.{':'.join(v for _, v in labels)}" if labels else name
            now = _read(self.component_id, series, read)
            if now is not None:
                yield Sample(name, labels, float(now), gauge=True)
        if self._rate is not None:
            for name, figure in self._rate.figures().items():
                yield Sample(name, (), figure, gauge=True)


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
    "RATE_GAUGES",
    "RULE_COUNTERS",
    "SOURCE_COUNTERS",
    "Labels",
    "Metrics",
    "Rate",
    "Sample",
    "action_metrics",
    "rule_metrics",
    "source_metrics",
]

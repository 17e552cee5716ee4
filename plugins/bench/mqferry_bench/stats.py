"""The verifier's accounting: delivered, lost, duplicated and out-of-order messages per stream,
throughput over 1 s windows and end-to-end latency percentiles.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class StreamTally:
    """What arrived of one stream (one publisher's sequence)."""

    seen: set[int] = field(default_factory=set)
    duplicated: int = 0
    out_of_order: int = 0
    highest: int = -1


@dataclass(frozen=True, slots=True)
class LossReport:
    """Delivery accounting against what the publishers say they sent.

    Attributes:
        published: messages the publishers sent (and, at QoS 1, had acknowledged).
        expected: published messages that should arrive (all but the filtered ones).
        delivered: distinct expected messages that arrived.
        lost: expected messages that never arrived.
        duplicated: arrivals of a message already seen.
        out_of_order: first arrivals with a lower sequence number than one already seen in the
            same stream.
        filtered_delivered: messages expected to be filtered that arrived all the same.
        foreign: arrivals that were not benchmark payloads (or of an unknown stream).
        per_key: the same figures per stream key.
    """

    published: int
    expected: int
    delivered: int
    lost: int
    duplicated: int
    out_of_order: int
    filtered_delivered: int
    foreign: int
    per_key: dict[str, dict[str, int]]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "published": self.published, "expected": self.expected,
            "delivered": self.delivered, "lost": self.lost, "duplicated": self.duplicated,
            "out_of_order": self.out_of_order, "filtered_delivered": self.filtered_delivered,
            "foreign": self.foreign, "per_key": self.per_key,
        }


class Tally:
    """Counts arrivals; not thread-safe (feed it from one thread)."""

    def __init__(self) -> None:
        self.streams: dict[str, StreamTally] = {}
        self.arrivals = 0
        self.foreign = 0
        #: (receive time in seconds since the epoch, latency in ms) of each first arrival
        self.samples: list[tuple[float, float]] = []

    def add(self, key: str, seq: int, sent_us: int, received_s: float) -> None:
        """Record one arrival of message ``seq`` of stream ``key``."""
        self.arrivals += 1
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = StreamTally()
        if seq in stream.seen:
            stream.duplicated += 1
            return
        stream.seen.add(seq)
        if seq < stream.highest:
            stream.out_of_order += 1
        else:
            stream.highest = seq
        self.samples.append((received_s, received_s * 1000.0 - sent_us / 1000.0))

    def add_foreign(self) -> None:
        """Record an arrival that is no benchmark payload."""
        self.arrivals += 1
        self.foreign += 1

    @property
    def delivered(self) -> int:
        """Distinct messages seen so far."""
        return len(self.samples)

    def report(self, published: dict[str, int],
               filtered: tuple[int, int] = (0, 0)) -> LossReport:
        """Compare with ``published``: how many messages (sequence 0..n-1) each stream sent.

        Args:
            published: messages sent per stream key.
            filtered: sequence numbers ``[start, stop)`` that a rule is expected to drop (the
                non-JSON burst against a ``payload.x`` rule): they are not counted as lost,
                and their arrivals are counted apart, as ``filtered_delivered``.
        """
        lo, hi = filtered
        per_key: dict[str, dict[str, int]] = {}
        foreign = self.foreign
        for key, count in sorted(published.items()):
            s = self.streams.get(key, StreamTally())
            expected = count - max(0, min(hi, count) - lo) if hi > lo else count
            arrived = sum(1 for q in s.seen if q < count)
            passed = sum(1 for q in s.seen if lo <= q < hi and q < count)
            foreign += len(s.seen) - arrived
            delivered = arrived - passed
            per_key[key] = {"published": count, "expected": expected, "delivered": delivered,
                            "lost": expected - delivered, "duplicated": s.duplicated,
                            "out_of_order": s.out_of_order, "filtered_delivered": passed}
        for key, s in self.streams.items():
            if key not in published:
                foreign += len(s.seen) + s.duplicated
        fields = ("published", "expected", "delivered", "lost", "duplicated", "out_of_order",
                  "filtered_delivered")
        total = {f: sum(v[f] for v in per_key.values()) for f in fields}
        return LossReport(foreign=foreign, per_key=per_key, **total)


class Tallied:
    """What a verifier reports of its :class:`Tally` while a run goes on."""

    tally: Tally

    @property
    def delivered(self) -> int:
        """Distinct benchmark messages (or records) received so far."""
        return self.tally.delivered

    @property
    def arrivals(self) -> int:
        """Every message (or record) received so far."""
        return self.tally.arrivals


@dataclass(frozen=True, slots=True)
class Timing:
    """Throughput and latency figures.

    Attributes:
        throughput_median: median of the per-second delivery counts over the full 1 s windows
            (messages/s); ``overall`` when the run is shorter than three windows.
        throughput_overall: distinct deliveries divided by the time from first to last.
        windows: number of full 1 s windows.
        latency_ms: p50, p99 and max end-to-end latency in milliseconds.
    """

    throughput_median: float
    throughput_overall: float
    windows: int
    latency_ms: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"throughput_median": round(self.throughput_median, 1),
                "throughput_overall": round(self.throughput_overall, 1),
                "windows": self.windows,
                "latency_ms": {k: round(v, 2) for k, v in self.latency_ms.items()}}


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list (0.0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-fraction * len(sorted_values) // 1))))
    return sorted_values[rank - 1]


def timing(samples: list[tuple[float, float]]) -> Timing:
    """Throughput and latency from ``(received_s, latency_ms)`` samples."""
    if not samples:
        return Timing(0.0, 0.0, 0, {"p50": 0.0, "p99": 0.0, "max": 0.0})
    times = sorted(t for t, _ in samples)
    span = times[-1] - times[0]
    overall = len(times) / span if span > 0 else float(len(times))
    # Windows start at the first arrival; the last (partial) window is left out, as is the
    # first one, which holds the ramp-up.
    counts: dict[int, int] = {}
    start = times[0]
    for t in times:
        i = int(t - start)
        counts[i] = counts.get(i, 0) + 1
    last = int(span)
    full = [counts.get(i, 0) for i in range(1, last)]
    median = statistics.median(full) if len(full) >= 1 else overall
    lat = sorted(v for _, v in samples)
    return Timing(float(median), overall, len(full),
                  {"p50": percentile(lat, 0.50), "p99": percentile(lat, 0.99), "max": lat[-1]})

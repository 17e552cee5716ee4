"""The last hour of every action's and source's metrics, in memory, for the console's charts.

One supervised task snapshots each running action and source every ``interval`` seconds (5) and
keeps ``span`` seconds (an hour, 720 samples) per component, in fixed rings of ``array('d')``:
8 bytes a value, nothing allocated per sample. A field that has been zero since its component
appeared takes no memory; its ring is made at its first non-zero value, and the samples before it
read as 0. A console page opened during an incident so shows the hour before it.

Components are keyed by kind and id, not by object: an action replaced by a settings change keeps
its history. Samples taken while a component was not running (disabled, removed, being replaced)
read as ``None``; a component gone for a whole span is forgotten.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Callable, Mapping
from typing import Any

from mqferry._tasks import Supervisor

__all__ = ["MetricHistory"]

#: ``{"actions": {id: action}, "sources": {id: source}}``: each has ``.metrics``.
Components = Callable[[], Mapping[str, Mapping[str, Any]]]


class _Track:
    """The rings of one component."""

    __slots__ = ("first", "last", "names", "present", "rings")

    def __init__(self, first: int, capacity: int) -> None:
        self.first = first
        self.last = first
        #: Every field seen, in first-seen order (the zero ones have no ring).
        self.names: dict[str, None] = {}
        self.present = bytearray(capacity)
        self.rings: dict[str, array[float]] = {}


class MetricHistory:
    """Samples the actions' and sources' metrics; serves the kept samples.

    Args:
        components: returns the running components by kind, read at each sample (the app's
            ``actions`` and ``sources`` maps, which reconfiguration changes).
        interval: seconds between samples.
        span: seconds kept.
        clock: wall-clock seconds (the samples' times are what a browser's ``Date.now()`` is).
    """

    def __init__(self, components: Components, *, interval: float = 5.0, span: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        if interval <= 0 or span < interval:
            raise ValueError("interval must be positive and span at least one interval")
        self.interval = interval
        self.capacity = int(span // interval)
        self._components = components
        self._clock = clock
        self._times: array[float] = array("d", bytes(8 * self.capacity))
        self._n = 0  # samples taken so far; sample k lives in slot k % capacity
        self._tracks: dict[tuple[str, str], _Track] = {}
        #: The sampling loop.
        self.task = Supervisor("mqferry[metrics].history", self._run)

    def start(self) -> None:
        """Start sampling in the background (no-op when it runs)."""
        self.task.start()

    async def stop(self) -> None:
        """Stop sampling; what was kept stays readable. Idempotent."""
        await self.task.stop()

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def sample(self) -> None:
        """Take one sample of every running action and source."""
        n, cap = self._n, self.capacity
        slot = n % cap
        self._times[slot] = round(self._clock() * 1000)
        for kind, components in self._components().items():
            for cid, component in components.items():
                track = self._tracks.get((kind, cid))
                if track is None:
                    track = self._tracks[(kind, cid)] = _Track(n, cap)
                self._record(track, slot, component.metrics.snapshot())
                track.last = n
        for key, track in list(self._tracks.items()):
            if track.last != n:
                track.present[slot] = 0  # not running now; the slot held a sample a span ago
                if n - track.last >= cap:
                    del self._tracks[key]
        self._n = n + 1

    def _record(self, track: _Track, slot: int, snap: Mapping[str, float]) -> None:
        rings = track.rings
        for name, value in snap.items():
            ring = rings.get(name)
            if ring is None:
                track.names.setdefault(name, None)
                if not value:
                    continue
                ring = rings[name] = array("d", bytes(8 * self.capacity))
            ring[slot] = value
        for name, ring in rings.items():
            if name not in snap:
                ring[slot] = 0.0  # a gauge dropped since (a revoked partition's lag)
        track.present[slot] = 1

    def tracked(self, kind: str, cid: str) -> bool:
        """Whether samples of ``kind``/``cid`` are kept."""
        return (kind, cid) in self._tracks

    def series(self, kind: str, cid: str, since: float | None = None) -> dict[str, Any]:
        """The kept samples of one component, oldest first.

        Args:
            kind: ``actions`` or ``sources``.
            cid: the component id, ``<type>:<name>``.
            since: only samples taken after this time (epoch milliseconds).

        Returns:
            ``{"interval": seconds, "t": [ms, ...], "metrics": {name: [value or None, ...]}}``;
            a value is ``None`` where the component was not running. Empty lists for a
            component not sampled yet.
        """
        track = self._tracks.get((kind, cid))
        out: dict[str, Any] = {"interval": self.interval, "t": [], "metrics": {}}
        if track is None:
            return out
        cap = self.capacity
        slots = [k % cap for k in range(max(track.first, self._n - cap), self._n)]
        if since is not None:
            slots = [s for s in slots if self._times[s] > since]
        out["t"] = [int(self._times[s]) for s in slots]
        present = track.present
        for name in track.names:
            ring = track.rings.get(name)
            out["metrics"][name] = [(ring[s] if ring is not None else 0.0) if present[s] else None
                                    for s in slots]
        return out

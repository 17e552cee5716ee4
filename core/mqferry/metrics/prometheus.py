"""The metrics of a running app in Prometheus' text format.

Every rule, action and source counter becomes a family named after its kind and EMQX's counter
name (``rule:r1`` ``matched`` is ``mqferry_rule_matched_total{id="r1"}``, ``kafka_producer:k``
``dropped.queue_full`` is ``mqferry_action_dropped_queue_full_total{id="kafka_producer:k",
type="kafka_producer"}``); gauges and rates keep their names without ``_total``. Component health
is ``mqferry_status{id=..., kind=..., status=...} 1``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "GAUGES", "exposition"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Snapshot names that are gauges; every other name is a counter.
GAUGES = frozenset({"queuing", "queuing_bytes", "inflight", "rate", "rate_max", "rate_last5m"})

_BAD = re.compile(r"[^a-zA-Z0-9_]")


def _metric_name(kind: str, name: str) -> str:
    return f"mqferry_{kind}_{_BAD.sub('_', name)}"


class _Snapshot(Collector):
    def __init__(self, components: Iterable[tuple[str, str, Mapping[str, float]]],
                 statuses: Iterable[tuple[str, str, str]]) -> None:
        self.components = list(components)
        self.statuses = list(statuses)

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for kind, cid, snap in self.components:
            labels = ["id"] if kind == "rule" else ["id", "type"]
            values = [cid] if kind == "rule" else [cid, cid.split(":", 1)[0]]
            for name, value in snap.items():
                fam_name = _metric_name(kind, name)
                fam = families.get(fam_name)
                if fam is None:
                    doc = f"EMQX {kind} metric {name}"
                    fam = (GaugeMetricFamily(fam_name, doc, labels=labels) if name in GAUGES
                           else CounterMetricFamily(fam_name, doc, labels=labels))
                    families[fam_name] = fam
                fam.add_metric(values, float(value))
        yield from families.values()
        status = GaugeMetricFamily("mqferry_status", "1 for the current status of a component",
                                   labels=["id", "kind", "status"])
        for kind, cid, state in self.statuses:
            status.add_metric([cid, kind, state], 1.0)
        yield status


def exposition(components: Iterable[tuple[str, str, Mapping[str, float]]],
               statuses: Iterable[tuple[str, str, str]] = ()) -> bytes:
    """The text exposition of ``(kind, id, snapshot)`` triples and ``(kind, id, status)``.

    ``kind`` is ``rule``, ``action`` or ``source``; a rule's id is given without ``rule:``.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(components, statuses))
    return generate_latest(registry)

"""The metrics of a running app in Prometheus' text format, after Prometheus' naming rules.

A family is ``mqferry_<kind>_<name>``, ``kind`` being ``rule``, ``action`` or ``source`` and
``name`` the EMQX metric name with ``.`` as ``_``:

* counters end in ``_total``: ``rule:r1``'s ``matched`` is ``mqferry_rule_matched_total{id="r1"}``;
  an action's or source's samples carry ``id`` and ``type`` (``id="kafka_producer:k",
  type="kafka_producer"``);
* the reasons of ``failed.<reason>`` and ``dropped.<reason>`` are a ``reason`` label of one family
  per kind, ``mqferry_action_failed_by_reason_total{..., reason="too_large"}``, next to the totals
  ``mqferry_action_failed_total``;
* gauges (``queuing``, ``inflight``, ``paused``, ``lag``, the rates, ...) are gauges, typed by how
  the component registered them, never by their name; a gauge kept per series (a source's lag per
  topic and partition) has one sample per series with its labels, and its total is the PromQL
  ``sum()`` of them (the JSON API shows the total as well);
* units are in the name, in base units: a gauge in milliseconds (``oldest_unacked_age_ms``) is
  exposed in seconds (``mqferry_action_oldest_unacked_age_seconds``); ``queuing_bytes`` is bytes;
* the rates (``rate``, ``rate_max``, ``rate_last5m``) are messages per second, as EMQX computes
  them; in PromQL prefer ``rate()`` of the counters.

Component health is ``mqferry_status{id=..., kind=..., status=...} 1``.

Every sample carries the ``node`` label of the node that exposes it: in a cluster each node is
scraped on its own, and the cluster's total is the PromQL ``sum without (node)`` of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mqferry._metrics import Metrics, Sample

__all__ = ["CONTENT_TYPE", "REASON_PARENTS", "exposition", "family_name"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Counters whose ``<parent>.<reason>`` breakdown becomes a ``reason`` label.
REASON_PARENTS = ("failed", "dropped")

_BAD = re.compile(r"[^a-zA-Z0-9_]")

_HELP = {
    "matched": "messages that reached it",
    "passed": "messages whose SQL produced an output",
    "filtered": "messages the WHERE clause left out",
    "failed": "messages that failed",
    "failed_by_reason": "failed messages by reason",
    "dropped": "messages dropped without being tried",
    "dropped_by_reason": "dropped messages by reason",
    "success": "messages delivered",
    "received": "records received",
    "actions": "action calls",
    "actions_success": "action calls that succeeded",
    "actions_failed": "action calls that failed",
    "retried": "records tried again",
    "late_reply": "records acknowledged after the sync query timeout",
    "queuing": "records waiting to be sent",
    "queuing_bytes": "bytes of the records waiting to be sent",
    "inflight": "records sent and not yet acknowledged",
    "oldest_unacked_age_seconds": "age of the oldest record not yet acknowledged",
    "paused": "1 while the partitions are paused (too many records in flight)",
    "lag": "records not yet settled, per topic and partition",
    "rate": "messages per second, last 5 seconds",
    "rate_max": "highest messages per second since the start",
    "rate_last5m": "messages per second, average of the last 5 minutes",
}


def family_name(kind: str, sample: Sample) -> tuple[str, float, tuple[tuple[str, str], ...]]:
    """The family name (without ``_total``), the value and any extra labels of ``sample``.

    Args:
        kind: ``rule``, ``action`` or ``source``.
        sample: one sample of a component's :class:`~mqferry._metrics.Metrics`.
    """
    name, value, labels = sample.name, sample.value, sample.labels
    parent, dot, reason = name.partition(".")
    if not sample.gauge and dot and parent in REASON_PARENTS:
        return f"mqferry_{kind}_{parent}_by_reason", value, (("reason", reason),)
    if sample.gauge and name.endswith("_ms"):
        name, value = name.removesuffix("_ms") + "_seconds", value / 1000.0
    return f"mqferry_{kind}_{_BAD.sub('_', name)}", value, labels


class _Snapshot(Collector):
    def __init__(self, components: Iterable[tuple[str, str, Metrics]],
                 statuses: Iterable[tuple[str, str, str]], node: str | None) -> None:
        self.components = list(components)
        self.statuses = list(statuses)
        self.node: tuple[tuple[str, str], ...] = (("node", node),) if node is not None else ()

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for kind, cid, metrics in self.components:
            base = (("id", cid),) if kind in {"rule", "mqtt"} else (("id", cid),
                                                          ("type", cid.split(":", 1)[0]))
            for sample in metrics.samples():
                fam_name, value, extra = family_name(kind, sample)
                labels = base + extra + self.node
                fam = families.get(fam_name)
                if fam is None:
                    short = fam_name.removeprefix(f"mqferry_{kind}_")
                    doc = f"{kind}: {_HELP.get(short, sample.name)}"
                    keys = [k for k, _ in labels]
                    fam = (GaugeMetricFamily(fam_name, doc, labels=keys) if sample.gauge
                           else CounterMetricFamily(fam_name, doc, labels=keys))
                    families[fam_name] = fam
                fam.add_metric([v for _, v in labels], value)
        yield from families.values()
        status = GaugeMetricFamily("mqferry_status", "1 for the current status of a component",
                                   labels=["id", "kind", "status", *(k for k, _ in self.node)])
        for kind, cid, state in self.statuses:
            status.add_metric([cid, kind, state, *(v for _, v in self.node)], 1.0)
        yield status


def exposition(components: Iterable[tuple[str, str, Metrics]],
               statuses: Iterable[tuple[str, str, str]] = (), *, node: str | None = None) -> bytes:
    """The text exposition of ``(kind, id, metrics)`` triples and ``(kind, id, status)``.

    ``kind`` is ``rule``, ``action``, ``source`` or ``mqtt`` (the MQTT sessions' counters, id
    ``mqtt``); a rule's id is given without ``rule:``.
    ``node``, when given, is a ``node`` label on every sample.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(components, statuses, node))
    return generate_latest(registry)

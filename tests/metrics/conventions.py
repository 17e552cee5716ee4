"""Prometheus' naming and typing rules, checked on a text exposition (shared with integration)."""

from __future__ import annotations

import re

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

#: Snapshot gauges by their exposed family suffix: each must be typed ``gauge`` wherever it appears.
GAUGE_SUFFIXES = ("queuing", "queuing_bytes", "inflight", "oldest_unacked_age_seconds", "paused",
                  "lag", "rate", "rate_max", "rate_last5m")
_NAME = re.compile(r"^mqferry_[a-z][a-z0-9_]*$")


def parse(text: str) -> dict[str, Metric]:
    """The families of an exposition by name; a name given twice is a failure."""
    families: dict[str, Metric] = {}
    for fam in text_string_to_metric_families(text):
        assert fam.name not in families, f"family {fam.name} exposed twice"
        families[fam.name] = fam
    return families


def check_conventions(text: str, *, forbidden: tuple[str, ...] = ()) -> dict[str, Metric]:
    """Assert Prometheus' conventions on every family of ``text``; return the families.

    Args:
        text: the exposition.
        forbidden: strings (topic names, ...) that must be labels, never part of a name.
    """
    families = parse(text)
    for name, fam in families.items():
        assert _NAME.match(name), f"{name}: not a snake_case mqferry_ name"
        assert not re.search(r"_ms(_|$)", name), f"{name}: milliseconds (use _seconds)"
        for word in forbidden:
            assert word.replace("-", "_").replace(".", "_") not in name, \
                f"{name}: {word!r} belongs in a label"
        kind = name.split("_")[1]
        suffix = name.removeprefix(f"mqferry_{kind}_")
        if suffix in GAUGE_SUFFIXES:
            assert fam.type == "gauge", f"{name} is a {fam.type}, not a gauge"
        assert fam.type in ("counter", "gauge"), f"{name}: type {fam.type}"
        label_sets = {tuple(sorted(s.labels)) for s in fam.samples}
        assert len(label_sets) <= 1, f"{name}: samples with different labels {label_sets}"
        for sample in fam.samples:
            if fam.type == "counter":
                assert sample.name == f"{name}_total", f"{sample.name}: a counter ends in _total"
            else:
                assert sample.name == name and not name.endswith("_total"), \
                    f"{sample.name}: a gauge named like a counter"
    return families


def value(families: dict[str, Metric], name: str, **labels: str) -> float:
    """The value of the one sample of family ``name`` whose labels include ``labels``."""
    found = [s.value for s in families[name].samples
             if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return float(found[0])

"""Rule engine benchmark: evaluations per second and routing cost per message.

Run on one core: ``taskset -c 0 .venv/bin/python benchmarks/bench_rules.py``. Every figure is the
median of several runs; the evaluation rate is compared with a same-script baseline (a bare
``orjson.loads`` of the payload plus building the output dict by hand), so that a noisy machine
shows up in both numbers.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "core"))

import orjson

from mqferry._rules import Event, TopicIndex, compile_sql

SQL = 'SELECT payload.temp as t, clientid FROM "t/#" WHERE payload.temp > 20'
PAYLOAD = orjson.dumps({
    "temp": 25.5, "hum": 61, "device": "sensor-0042", "site": "plant-7/line-3",
    "status": "ok", "battery": 87, "ts": 1700000000000, "fw": "1.4.2",
    "tags": ["a", "b", "c"], "pad": "x" * 40,
})
RUNS = 7
N_EVAL = 200_000
N_ROUTE = 200_000


def base_event() -> dict[str, Any]:
    return {
        "id": "0005F8F84FFFAFB9F44200000D810002", "clientid": "c1", "username": "u",
        "payload": PAYLOAD, "peerhost": "10.0.0.1", "topic": "t/1", "qos": 1,
        "flags": {"retain": False, "dup": False}, "headers": {}, "pub_props": {},
        "timestamp": 1700000000000, "publish_received_at": 1700000000000, "node": "n1",
    }


def bench_rule() -> float:
    rule = compile_sql(SQL)
    base = base_event()
    apply = rule.apply
    start = time.perf_counter()
    for _ in range(N_EVAL):
        # A fresh Event per message, so every evaluation pays for the JSON decode.
        out = apply(Event(base))
    elapsed = time.perf_counter() - start
    assert out == {"t": 25.5, "clientid": "c1"}
    return N_EVAL / elapsed


def bench_baseline() -> float:
    base = base_event()
    loads = orjson.loads
    start = time.perf_counter()
    for _ in range(N_EVAL):
        ev = dict(base)
        data = loads(ev["payload"])
        temp = data.get("temp")
        out = {"t": temp, "clientid": ev["clientid"]} if temp > 20 else None
    elapsed = time.perf_counter() - start
    assert out is not None
    return N_EVAL / elapsed


def bench_route(n_filters: int) -> float:
    index: TopicIndex[int] = TopicIndex()
    # Distinct filters of the shapes rules use: exact, `+` and `#`.
    for i in range(n_filters):
        shape = i % 3
        if shape == 0:
            index.add(f"site/{i}/dev/+/temp", i)
        elif shape == 1:
            index.add(f"site/{i}/alarm/#", i)
        else:
            index.add(f"site/{i}/dev/{i}/hum", i)
    index.add("site/0/dev/+/temp", -1)
    topics = [f"site/{i % max(n_filters, 1)}/dev/7/temp" for i in range(1000)]
    match = index.match
    start = time.perf_counter()
    for k in range(N_ROUTE):
        match(topics[k % 1000])
    elapsed = time.perf_counter() - start
    return elapsed / N_ROUTE * 1e9


def main() -> None:
    # The machine this runs on is often shared: the load average says how far to trust a run.
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    rule_rates = []
    base_rates = []
    for _ in range(RUNS):
        rule_rates.append(bench_rule())
        base_rates.append(bench_baseline())
    rule_med, base_med = statistics.median(rule_rates), statistics.median(base_rates)
    print(f"payload: {len(PAYLOAD)} bytes; sql: {SQL}")
    print(f"rule evaluations/s (median of {RUNS}): {rule_med:,.0f}")
    print(f"baseline orjson.loads + dict/s (median of {RUNS}): {base_med:,.0f}")
    print(f"rule / baseline: {rule_med / base_med:.2f}")
    costs = {}
    for n in (1, 100, 10_000):
        costs[n] = statistics.median(bench_route(n) for _ in range(RUNS))
        print(f"routing with {n:>6} filters: {costs[n]:.0f} ns/message (median of {RUNS})")
    print(f"routing 10,000 vs 1 filter: {costs[10_000] / costs[1]:.2f}x")
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()

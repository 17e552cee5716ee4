"""When the messages of one standard run arrive: deliveries per 100 ms, phase by phase.

    python benchmarks/arrivals.py --repeat 2 pipe mqferry-alo mqferry-amo
    python benchmarks/arrivals.py --direction kafka-mqtt --load rate pipe mqferry-alo
    python benchmarks/arrivals.py pipe mqferry-alo mqferry-alo:-10   # the bridge at nice -10

The standard set's whole-run rate divides the deliveries by the time from the first arrival to
the last. At full load the load generators publish for about a second and the bridge then
works through what the MQTT broker queued meanwhile, so that figure mixes two phases: the one
where the bridge competes with the generators, the broker and Kafka for the cores, and the one
where it drains alone. This script runs the same load and prints, per run, the deliveries of
each 100 ms from the first arrival, the rate in each phase and the whole-run rate.

``variant:N`` runs the bridge's processes at niceness ``N`` (a diagnostic: does its share of
the CPU bound the first phase?); variants are interleaved, ``--repeat`` times.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bridges import Brokers
from harness import bridged, spec_for
from run import loads

from mqferry_bench.runner import BenchRun


def timeline(label: str, direction: str, load: dict[str, object],
             brokers: Brokers) -> dict[str, object]:
    """One run of ``label`` (``variant`` or ``variant:niceness``): its arrivals by phase."""
    variant, _, nice = label.partition(":")
    with bridged(variant, direction, brokers) as (bridge, prefix, topic):
        if nice:
            for pid in bridge.pids():
                os.setpriority(os.PRIO_PROCESS, pid, int(nice))
        bench = BenchRun(spec_for(direction, brokers, prefix, topic, **load), bridge.pids)
        bench.start()
        bench.wait_generators()
        bench.drain()
        arrivals = sorted(t for t, _ in bench.verifier.tally.samples)
        result = bench.finish()
    published_until = max(float(r["finished"]) for r in bench.results)
    first, last = arrivals[0], arrivals[-1]
    during = [t for t in arrivals if t <= published_until]
    after = [t for t in arrivals if t > published_until]
    bins = Counter(int((t - first) * 10) for t in arrivals)

    def rate(ts: list[float], start: float, end: float) -> float:
        return len(ts) / (end - start) if end > start else 0.0

    return {"label": label, "overall": result["timing"]["throughput_overall"],
            "while_publishing": rate(during, first, min(published_until, last)),
            "after": rate(after, published_until, last),
            "publishing_s": published_until - first, "span_s": last - first,
            "per_100ms": [bins.get(i, 0) for i in range(int((last - first) * 10) + 1)],
            "load": os.getloadavg()[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variants", nargs="+", help="variants of benchmarks/run.py, or variant:nice")
    ap.add_argument("--direction", choices=["mqtt-kafka", "kafka-mqtt"], default="mqtt-kafka")
    ap.add_argument("--load", choices=["max", "rate"], default="max")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    load, brokers = loads(quick=False)[args.load], Brokers()
    for rep in range(args.repeat):
        for label in args.variants:
            r = timeline(label, args.direction, load, brokers)
            print(f"{label:24s} run {rep + 1}: whole run {r['overall']:8,.0f} msg/s; while "
                  f"publishing ({r['publishing_s']:.2f} s) {r['while_publishing']:8,.0f}; after "
                  f"{r['after']:8,.0f}; load {r['load']:.2f}")
            print("    per 100 ms:", " ".join(str(n) for n in r["per_100ms"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

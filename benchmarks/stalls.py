"""Where a run's latency outliers fall, and whether a broker was paused then.

    python benchmarks/stalls.py --direction kafka-mqtt --repeat 3 pipe mqferry-alo
    python benchmarks/stalls.py --direction mqtt-kafka --load max mqferry-alo

The standard set gives one p99 per run. At 2000 msg/s a single stall of ~100 ms anywhere on the
path (the load generator, the broker, the bridge, Mosquitto, the verifier) delays more than 1% of
an 8-second run and sets the p99 by itself. This script runs the same load and prints, per run,
the p50 / p99 / max latency, the 50 ms windows in which a message arrived later than
``--slow`` ms, and every pause of the development broker's JVM (its safepoints, from
``.dev/kafka/gc.log``, which ``scripts/services.sh`` writes) longer than 5 ms between the first
message sent and the last one received, and when the development Mosquitto saved its store
meanwhile (the time ``.dev/mosquitto/mosquitto.db`` was written: a save stalls it for up to
seconds). A broker
pause or save is the same for every variant; a window neither explains is the path's own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bridges import Brokers
from harness import GC_LOG, MQTT_STORE, bridged, broker_pauses, mqtt_saved, spec_for
from run import loads

from mqferry_bench.runner import BenchRun


def one_run(variant: str, direction: str, load: dict[str, object], brokers: Brokers, *,
            slow_ms: float, gc_log: Path, mqtt_store: Path = MQTT_STORE) -> None:
    """Run ``variant`` once and print its latency figures, slow windows and broker pauses."""
    with bridged(variant, direction, brokers) as (bridge, prefix, topic):
        bench = BenchRun(spec_for(direction, brokers, prefix, topic, **load), bridge.pids)
        bench.start()
        bench.wait_generators()
        bench.drain()
        samples = sorted(bench.verifier.tally.samples)
        bench.finish()
    if not samples:
        print(f"{variant:16s} no message arrived")
        return
    lat = sorted(ms for _, ms in samples)
    first_sent = min(t - ms / 1000 for t, ms in samples)
    last = samples[-1][0]
    slow: dict[int, float] = {}
    for t, ms in samples:
        if ms > slow_ms:
            k = int((t - first_sent) * 20)
            slow[k] = max(slow.get(k, 0.0), ms)
    print(f"{variant:16s} n={len(lat):,} p50={lat[len(lat) // 2]:.1f} "
          f"p99={lat[int(len(lat) * 0.99)]:.1f} max={lat[-1]:.1f} ms; "
          f"load {os.getloadavg()[0]:.2f}; "
          f"started {dt.datetime.fromtimestamp(first_sent):%H:%M:%S}")
    if slow:
        print("    arrivals later than", f"{slow_ms:g} ms (s after the first send: worst ms):",
              ", ".join(f"{k / 20:.2f}: {ms:.0f}" for k, ms in sorted(slow.items())))
    for when, name, ms in broker_pauses(first_sent, last, log=gc_log):
        print(f"    broker paused {ms:.1f} ms ({name}), ending {when - first_sent:.2f} s "
              "after the first send")
    saved = mqtt_saved(first_sent, last, store=mqtt_store)
    if saved is not None:
        print(f"    MQTT broker saved its store, ending {saved - first_sent:.2f} s after the first "
              "send")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variants", nargs="+", help="variants of benchmarks/run.py")
    ap.add_argument("--direction", choices=["mqtt-kafka", "kafka-mqtt"], default="kafka-mqtt")
    ap.add_argument("--load", choices=["max", "rate"], default="rate")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--slow", type=float, default=30.0, help="ms; later arrivals are listed")
    ap.add_argument("--gc-log", type=Path, default=GC_LOG, help="the broker's GC log")
    args = ap.parse_args()
    load, brokers = loads(quick=False)[args.load], Brokers()
    for _ in range(args.repeat):
        for variant in args.variants:
            one_run(variant, args.direction, load, brokers, slow_ms=args.slow, gc_log=args.gc_log)
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

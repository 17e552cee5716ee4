"""The standard benchmark set: mqferry against its baselines, both directions, same brokers.

    python benchmarks/run.py                 # the standard set (tox -e bench)
    python benchmarks/run.py --faults        # the standard set, then the fault scenarios
    python benchmarks/run.py --only-faults   # the fault scenarios alone
    python benchmarks/run.py --quick         # smaller counts, for a first look

The brokers are those of ``scripts/services.sh`` (``MQFERRY_KAFKA_BOOTSTRAP`` or
``MQFERRY_KAFKA_PORT``, ``MQFERRY_MQTT_HOST``, ``MQFERRY_MQTT_PORT``). Every run uses a fresh
Kafka topic and MQTT
prefix. Results go to ``benchmarks/results/latest.json`` and, as Markdown tables for RESULTS.md,
to ``latest.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil
from bridges import K2M_VARIANTS, M2K_EXTRA, M2K_VARIANTS, Brokers
from harness import check_broker_store, measure, save
from rich.console import Console

from mqferry_bench.report import print_results, ratio, summary_row

RESULTS = Path(__file__).resolve().parent / "results"
console = Console(stderr=True, width=160)


def loads(quick: bool) -> dict[str, dict[str, Any]]:
    """The two standard loads: as fast as possible, and a fixed rate for latency."""
    scale = 4 if quick else 1
    return {
        "max": {"count": 200_000 // scale, "rate": 0.0, "size": 200, "streams": 4, "qos": 1},
        "rate": {"count": 16_000 // scale, "rate": 2000.0, "size": 200, "streams": 4, "qos": 1},
    }


def machine() -> str:
    """One line about the machine."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return (f"{psutil.cpu_count()} vCPU {cpu}, {mem:.0f} GiB; {platform.system()} "
            f"{platform.release()}; Python {platform.python_version()}")


def _median(rows: list[dict[str, Any]], field: str) -> float | None:
    values = [r[field] for r in rows if r[field] is not None]
    return statistics.median(values) if values else None


def markdown(results: list[dict[str, Any]], direction: str, load: str) -> str:
    """A Markdown table of one direction and load, with ratios against the baselines.

    Counts are summed over the repetitions; every other figure is their median, and the
    throughput columns also show the lowest and highest repetition. Two throughputs: the median
    of the run's 1 s windows, and the whole run's (delivered over the time from the first to
    the last delivery). At full load a run lasts a few seconds, so the window median rests on
    a handful of windows; the ratios against the baselines use the whole-run rate.
    """
    rows = [r for r in results if r["spec"]["direction"] == direction and r["load"] == load]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    per = {v: [{**summary_row(r), "whole_s": r["timing"].get("throughput_overall")}
               for r in rows if r["variant"] == v] for v in variants}
    med = {v: {f: _median(per[v], f) for f in ("msg_s", "whole_s", "p50_ms", "p99_ms",
                                                "max_ms", "cpu_s_per_100k", "peak_rss_mb")}
           for v in variants}
    pipe, paho = med.get("pipe", {}), med.get("paho", {})
    head = ("| variant | runs | published | delivered | lost | dup | out of order "
            "| msg/s whole run (median; range) | vs pipe | vs paho | msg/s median 1 s (range) "
            "| p50 ms | p99 ms | max ms | CPU s / 100k | peak RSS MiB | load avg 1 min |")
    out = [head, "|" + " --- |" * 17]
    for v in variants:
        s, m = per[v], med[v]
        total = {f: sum(r[f] for r in s) for f in ("published", "delivered", "lost",
                                                    "duplicated", "out_of_order")}
        out.append(
            f"| {v} | {len(s)} | {total['published']:,} | {total['delivered']:,} | "
            f"{total['lost']:,} | {total['duplicated']:,} | {total['out_of_order']:,} | "
            f"{_spread(s, 'whole_s', m)} | "
            f"{_r(ratio(m['whole_s'], pipe.get('whole_s')))} | "
            f"{_r(ratio(m['whole_s'], paho.get('whole_s')))} | {_spread(s, 'msg_s', m)} | "
            f"{_r(m['p50_ms'])} | "
            f"{_r(m['p99_ms'])} | {_r(m['max_ms'])} | {_r(m['cpu_s_per_100k'])} | "
            f"{_r(m['peak_rss_mb'])} | {_loads(rows, v)} |")
    out.append("")
    out.append("p99 ms per run, with the Kafka broker's pauses of 20 ms or more during the run "
               "(`.dev/kafka/gc.log`) and the MQTT broker's saves of its store "
               "(`.dev/mosquitto/mosquitto.db`); every client waits through either:")
    out.append("")
    for v in variants:
        runs = [r for r in rows if r["variant"] == v]
        out.append(f"- {v}: " + "; ".join(_p99_and_pauses(r) for r in runs))
    return "\n".join(out)


def _p99_and_pauses(result: dict[str, Any]) -> str:
    p99 = result["timing"]["latency_ms"].get("p99")
    text = "-" if p99 is None else f"{p99:,.1f}"
    pauses = [ms for ms in result.get("broker_pauses_ms", ()) if ms >= 20]
    notes = [f"broker paused {', '.join(f'{ms:,.0f}' for ms in pauses)} ms"] if pauses else []
    if result.get("mqtt_saved"):
        notes.append("MQTT broker saved its store")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def _spread(rows: list[dict[str, Any]], field: str, med: dict[str, float | None]) -> str:
    """``median (lowest-highest)`` of a throughput field over the repetitions."""
    values = [r[field] for r in rows if r[field] is not None]
    if not values:
        return "-"
    return f"{med[field] or 0:,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def _loads(rows: list[dict[str, Any]], variant: str) -> str:
    """The 1-minute load averages after each run of ``variant``, as ``lo-hi``."""
    values = [r["loadavg"][0] for r in rows if r["variant"] == variant and "loadavg" in r]
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def _r(v: float | None) -> str:
    return "-" if v is None else f"{v:,.2f}"


def standard(brokers: Brokers, quick: bool, directions: list[str],
             variants: list[str] | None, repeat: int, *,
             only_load: str | None = None) -> list[dict[str, Any]]:
    """Every variant under every standard load, ``repeat`` times, variants interleaved.

    The order of the variants rotates by one on each repetition, so no variant always runs first
    (on a shared machine, after a quiet spell) or last.
    """
    results = []
    for rep in range(1, repeat + 1):
        for direction in directions:
            names = M2K_VARIANTS if direction == "mqtt-kafka" else K2M_VARIANTS
            known = names + M2K_EXTRA if direction == "mqtt-kafka" else names
            for load_name, load in loads(quick).items():
                if only_load and load_name != only_load:
                    continue
                chosen = list(variants or names)
                shift = (rep - 1) % len(chosen) if chosen else 0
                for variant in chosen[shift:] + chosen[:shift]:
                    if variant.partition("@")[0].split("+")[0] not in known:
                        continue
                    console.print(f"[bold]{direction} {load_name}[/] {variant} "
                                  f"(run {rep} of {repeat}) ...")
                    r = measure(variant, direction, brokers, label=f"{variant} {load_name}",
                                idle_timeout=20.0, **load)
                    r["load"], r["repetition"] = load_name, rep
                    r["loadavg"] = [round(x, 2) for x in os.getloadavg()]
                    results.append(r)
                    print_results([r], console=console)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description="mqferry's standard benchmark set")
    ap.add_argument("--quick", action="store_true", help="smaller counts, one repetition")
    ap.add_argument("--repeat", type=int, default=2,
                    help="repetitions of the standard set (medians are reported)")
    ap.add_argument("--faults", action="store_true", help="run the fault scenarios too")
    ap.add_argument("--only-faults", action="store_true", help="only the fault scenarios")
    ap.add_argument("--direction", choices=["mqtt-kafka", "kafka-mqtt"], action="append",
                    help="limit to one direction (repeatable)")
    ap.add_argument("--variant", action="append",
                    help="limit to these variants (repeatable); mqferry-alo@/path/to/checkout "
                         "runs the mqferry of another checkout")
    ap.add_argument("--load", choices=["max", "rate"], help="only this load")
    ap.add_argument("--scenario", action="append", help="limit to these fault scenarios")
    ap.add_argument("-o", "--output", type=Path, default=RESULTS / "latest.json")
    args = ap.parse_args()
    brokers = Brokers()
    directions = args.direction or ["mqtt-kafka", "kafka-mqtt"]
    started = time.monotonic()
    stored = check_broker_store(brokers)
    console.print(f"machine: {machine()}; brokers: MQTT {brokers.mqtt}, Kafka {brokers.kafka}; "
                  f"MQTT broker store: {stored}")
    results: list[dict[str, Any]] = []
    md: list[str] = [f"Machine: {machine()}. MQTT broker store at the start: {stored}."]
    if not args.only_faults:
        repeat = 1 if args.quick else max(1, args.repeat)
        results = standard(brokers, args.quick, directions, args.variant, repeat,
                           only_load=args.load)
        for direction in directions:
            for load_name, load in loads(args.quick).items():
                if args.load and load_name != args.load:
                    continue
                md.append(f"\n### {direction}, {load_name}: {load}\n")
                md.append(markdown(results, direction, load_name))
    fault_results: list[dict[str, Any]] = []
    if args.faults or args.only_faults:
        from faults import run_faults, scenario_markdown

        fault_results = run_faults(brokers, directions, args.scenario, console, args.variant)
        md.append("\n" + scenario_markdown(fault_results))
    save(results + fault_results, args.output)
    args.output.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    console.print(f"done in {time.monotonic() - started:.0f} s; results: {args.output}")
    lost = [r["label"] for r in results + fault_results
            if r["loss"]["lost"] and r.get("expect_no_loss")]
    if lost:
        console.print(f"[red]runs that promised no loss and lost messages: {', '.join(lost)}[/]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fault scenarios: a steady stream through a bridge while something breaks, then the tally.

Each scenario prints published / delivered / lost / duplicated. The faults touch only the
brokers of this checkout's ``scripts/services.sh`` (the pids in its ``MQFERRY_DEV_DIR``) and the
bridge the scenario started.

    python benchmarks/faults.py                        # every scenario, both directions
    python benchmarks/faults.py --scenario kill9 --direction mqtt-kafka --variant paho
    python benchmarks/faults.py --scenario chaos --repeat 1   # see benchmarks/chaos.py

``chaos`` (hostile messages, a runaway regex and a Kafka pause in a good stream, against a
calm run) has its own module, :mod:`chaos`, and pauses a private Kafka of its own.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bridges import Bridge, Brokers
from chaos import chaos_markdown, run_chaos
from harness import bridged, check_broker_store, save, spec_for
from rich.console import Console

from mqferry_bench.report import print_results
from mqferry_bench.runner import BenchRun, run

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ROOT / "scripts" / "services.sh"
RATE = 1000.0  # messages/s in all: steady, well below every bridge's limit
BIG = 2 * 1024 * 1024


def services(*args: str, tries: int = 1) -> None:
    """``scripts/services.sh ARGS`` for this checkout's brokers, tried up to ``tries`` times."""
    for attempt in range(1, tries + 1):
        if attempt > 1:
            print(f"  services.sh {' '.join(args)}: try {attempt} of {tries}", file=sys.stderr)
        proc = subprocess.run(["bash", str(SERVICES), *args], capture_output=True, text=True,
                              timeout=180, check=False)
        if proc.returncode == 0:
            return
        if attempt == tries:
            raise RuntimeError(f"services.sh {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
        time.sleep(5.0)


def _dev_pid(name: str) -> int:
    dev = Path(os.environ.get("MQFERRY_DEV_DIR", ROOT / ".dev"))
    return int((dev / f"{name}.pid").read_text().strip())


def kill9(bridge: Bridge, note: Callable[[str], None]) -> None:
    """SIGKILL the bridge, start it again a second later."""
    note(f"kill -9 {bridge.pids()}")
    bridge.kill()
    time.sleep(1.0)
    bridge.start()
    note("bridge restarted")


def kafka_restart(bridge: Bridge, note: Callable[[str], None]) -> None:
    """Stop Kafka (SIGTERM, clean shutdown), wait 5 s, start it again."""
    note("stopping Kafka")
    services("stop", "kafka")
    note("Kafka stopped")
    time.sleep(5.0)
    # The dev ports lie in the kernel's ephemeral range (32768-60999): a client that keeps
    # reconnecting to the stopped broker can be handed the broker's own port as its local port
    # and connect to itself; that socket then sits in TIME-WAIT for 60 s and the restarted
    # broker cannot bind. Keep trying until it clears.
    services("start", "kafka", tries=12)
    note("Kafka started")


def kafka_pause(bridge: Bridge, note: Callable[[str], None]) -> None:
    """``kill -STOP`` Kafka for 20 s, then ``kill -CONT``."""
    pid = _dev_pid("kafka")
    note(f"kill -STOP {pid}")
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(20.0)
    finally:
        os.kill(pid, signal.SIGCONT)
    note("kill -CONT")


def mosquitto_restart(bridge: Bridge, note: Callable[[str], None]) -> None:
    """Stop Mosquitto (SIGTERM: it saves its sessions), start it again."""
    note("stopping Mosquitto")
    services("stop", "mosquitto")
    time.sleep(1.0)
    services("start", "mosquitto", tries=12)
    note("Mosquitto started")


@dataclass(frozen=True)
class Scenario:
    """One fault scenario."""

    name: str
    title: str
    fault: Callable[[Bridge, Callable[[str], None]], None] | None
    count: int = 30_000
    load: tuple[tuple[str, Any], ...] = ()
    directions: tuple[str, ...] = ("mqtt-kafka", "kafka-mqtt")


SCENARIOS = {s.name: s for s in (
    Scenario("kill9", "kill -9 the bridge mid-stream, restart it", kill9),
    Scenario("kafka-restart", "stop and restart Kafka", kafka_restart, count=40_000),
    Scenario("kafka-stop20", "kill -STOP Kafka for 20 s", kafka_pause, count=40_000),
    Scenario("mosquitto-restart", "restart Mosquitto", mosquitto_restart),
    # Per stream, sequence 5000 is 2 MB (the topic takes up to 4 MB).
    Scenario("big-payload", "a 2 MB payload in the stream", None, count=20_000,
             load=(("oversize", {5000: BIG}),)),
    # Per stream, sequences 2000..2999 are not JSON; mqferry's rule reads payload.x.
    Scenario("non-json", "a burst of non-JSON payloads against a payload.x rule", None,
             count=20_000, load=(("text_seqs", (2000, 3000)),), directions=("mqtt-kafka",)),
)}

DEFAULT_VARIANTS = {"mqtt-kafka": ("mqferry-alo",), "kafka-mqtt": ("mqferry-alo",)}

#: Scenarios with a module of their own (selected with --scenario like the others).
CHAOS = "chaos"


def run_scenario(scenario: Scenario, direction: str, variant: str, brokers: Brokers,
                 console: Console) -> dict[str, Any]:
    """Run one scenario against one bridge variant; the result with its timeline."""
    events: list[tuple[float, str]] = []
    t0 = time.monotonic()

    def note(text: str) -> None:
        events.append((round(time.monotonic() - t0, 1), text))
        console.print(f"  [{events[-1][0]:6.1f} s] {text}")

    load: dict[str, Any] = {"count": scenario.count, "rate": RATE, "size": 200, "streams": 4,
                            "qos": 1, "idle_timeout": 90.0, "settle": 5.0, **dict(scenario.load)}
    if scenario.name == "non-json" and variant.startswith("mqferry"):
        load["text_filtered"] = True
    fault_thread: list[threading.Thread] = []
    trigger = scenario.count // 4

    with bridged(variant, direction, brokers) as (bridge, prefix, topic):
        def tick(r: BenchRun) -> None:
            if scenario.fault is not None and not fault_thread and r.sent() >= trigger:
                th = threading.Thread(target=scenario.fault, args=(bridge, note),
                                      name=f"fault-{scenario.name}")
                fault_thread.append(th)
                th.start()

        spec = spec_for(direction, brokers, prefix, topic, **load)
        note(f"{scenario.name}: {direction} through {variant}, {scenario.count:,} messages at "
             f"{RATE:.0f}/s")
        try:
            result = run(spec, watch=bridge.pids, tick=tick)
        finally:
            for th in fault_thread:
                th.join(300)
        result["bridge_alive_at_end"] = bool(bridge.pids())
        result["bridge_log_tail"] = bridge.log_text()[-4000:]
        result["bridge_log_warnings"] = [
            line for line in bridge.log_text().splitlines()
            if " WARNING " in line or " ERROR " in line][-30:]
    result.update(label=f"{scenario.name} {direction} {variant}", variant=variant,
                  scenario=scenario.name, title=scenario.title, events=events,
                  expect_no_loss=variant.partition("@")[0].split("+")[0] == "mqferry-alo")
    return result


def run_faults(brokers: Brokers, directions: list[str], names: list[str] | None,
               console: Console, variants: list[str] | None = None, *,
               chaos_repeat: int | None = None) -> list[dict[str, Any]]:
    """Every selected scenario, direction and variant (``chaos``: MQTT -> Kafka, mqferry)."""
    results = []
    for scenario in SCENARIOS.values():
        if names and scenario.name not in names:
            continue
        for direction in directions:
            if direction not in scenario.directions:
                continue
            for variant in variants or DEFAULT_VARIANTS[direction]:
                if variant == "mqferry-amo" and direction == "kafka-mqtt":
                    continue
                console.print(f"[bold]{scenario.title}[/]: {direction}, {variant}")
                r = run_scenario(scenario, direction, variant, brokers, console)
                results.append(r)
                print_results([r], console=console)
                loss = r["loss"]
                console.print(f"  published {loss['published']:,} / delivered "
                              f"{loss['delivered']:,} / lost {loss['lost']:,} / duplicated "
                              f"{loss['duplicated']:,}; bridge alive: {r['bridge_alive_at_end']}")
    if (not names or CHAOS in names) and "mqtt-kafka" in directions:
        results += run_chaos(brokers, console, chaos_repeat)
    return results


def scenario_markdown(results: list[dict[str, Any]]) -> str:
    """One Markdown table per scenario."""
    out: list[str] = []
    for name, scenario in SCENARIOS.items():
        rows = [r for r in results if r.get("scenario") == name]
        if not rows:
            continue
        out.append(f"\n### Fault: {scenario.title}\n")
        out.append("| direction | bridge | published | expected | delivered | lost | duplicated "
                   "| out of order | p99 ms | max ms | recovered | timeline |")
        out.append("|" + " --- |" * 12)
        for r in rows:
            loss, lat = r["loss"], r["timing"]["latency_ms"]
            timeline = "; ".join(f"{t:.0f} s {e}" for t, e in r["events"][1:])
            out.append(
                f"| {r['spec']['direction']} | {r['variant']} | {loss['published']:,} | "
                f"{loss['expected']:,} | {loss['delivered']:,} | {loss['lost']:,} | "
                f"{loss['duplicated']:,} | {loss['out_of_order']:,} | {lat['p99']:,.0f} | "
                f"{lat['max']:,.0f} | {'yes' if r['bridge_alive_at_end'] else 'NO'} | "
                f"{timeline or '-'} |")
    chaos = chaos_markdown(results)
    if chaos:
        out.append(chaos)
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description="mqferry's fault scenarios")
    ap.add_argument("--scenario", action="append", choices=sorted([*SCENARIOS, CHAOS]))
    ap.add_argument("--direction", action="append", choices=["mqtt-kafka", "kafka-mqtt"])
    ap.add_argument("--variant", action="append")
    ap.add_argument("--repeat", type=int, default=None,
                    help="runs of each chaos variant (default: MQFERRY_CHAOS_REPEAT or 3)")
    ap.add_argument("-o", "--output", type=Path,
                    default=Path(__file__).resolve().parent / "results" / "faults.json")
    args = ap.parse_args()
    console = Console(stderr=True, width=160)
    stored = check_broker_store(Brokers())
    console.print(f"MQTT broker store at the start: {stored}")
    results = run_faults(Brokers(), args.direction or ["mqtt-kafka", "kafka-mqtt"],
                         args.scenario, console, args.variant, chaos_repeat=args.repeat)
    save(results, args.output)
    args.output.with_suffix(".md").write_text(scenario_markdown(results) + "\n")
    print(scenario_markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

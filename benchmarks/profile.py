"""Profile the bridge under a standard load with py-spy: where the time goes per message.

    python benchmarks/profile.py mqtt-kafka max -o /tmp/m2k-max      # flame graph + raw stacks
    python benchmarks/profile.py mqtt-kafka rate --variant mqferry-amo

py-spy samples the bridge process (``--rate`` Hz) while the load runs; the output is py-spy's
"raw" collapsed-stack file (``<out>.txt``) that ``benchmarks/profile.py --summary <out>.txt``
folds into the stages RESULTS.md reports.

Modules compiled by ``scripts/compile.py`` have no Python frames: without ``--native`` their
time shows under the Python frame that called them (mostly asyncio's loop). ``--native`` makes
py-spy unwind C frames too, and their functions (``CPyDef_<module>___<name>``) fold into the
same stages as their sources.
"""

from __future__ import annotations

import argparse
import collections
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bridges import VENV_BIN, Brokers
from harness import WORK, bridged, spec_for
from run import loads

from mqferry_bench.runner import run

# Stage of a stack: the first rule (innermost frame outwards) whose fragment matches a frame.
STAGES: tuple[tuple[str, str], ...] = (
    ("idle (epoll wait)", "select (selectors.py"),
    ("socket send (the syscall)", "_SelectorSocketTransport.write"),
    ("socket read (the syscall)", "_read_ready__get_buffer"),
    ("Kafka request encode / response decode", "aiokafka/protocol/"),
    ("record batch build (Python part)", "aiokafka/record/"),
    ("aiokafka consumer (fetch, records)", "aiokafka/consumer/"),
    ("aiokafka producer / client request path", "aiokafka/"),
    ("Kafka sink: render", "mqferry_kafka_producer/render"),
    ("Kafka sink: records/partitions", "mqferry_kafka_producer/"),
    ("Kafka source: fetch/decode/template", "mqferry_kafka_consumer/"),
    ("rule eval", "mqferry/_rules/"),
    ("routing / runtime", "mqferry/_runtime/"),
    ("MQTT codec (decode/encode)", "mqferry/_mqtt/codec"),
    ("MQTT protocol / client", "mqferry/_mqtt/"),
    ("metrics", "mqferry/_metrics/"),
    ("asyncio loop / transports", "asyncio/"),
)

#: The stage of a compiled module's function, by the module's last name (``CPyDef_codec___``).
COMPILED_STAGES: dict[str, str] = {
    "codec": "MQTT codec (decode/encode)",
    "acks": "MQTT protocol / client",
    "protocol": "MQTT protocol / client",
    "client": "MQTT protocol / client",
    "delivery": "routing / runtime",
    "events": "routing / runtime",
    "rules": "routing / runtime",
    "event": "rule eval",
    "_templates": "Kafka sink: render",
    "render": "Kafka sink: render",
    "records": "Kafka sink: records/partitions",
    "action": "Kafka sink: records/partitions",
    "sender": "Kafka sink: records/partitions",
    "handler": "Kafka source: fetch/decode/template",
    "message": "Kafka source: fetch/decode/template",
    "_metrics": "metrics",
}
_COMPILED = re.compile(r"\bCPy(?:Def|Py)_(_?[a-z]+)___")


def stage_of(frame: str) -> str | None:
    """The stage of one frame of a collapsed stack, or None."""
    hit = next((name for name, frag in STAGES if frag in frame), None)
    if hit is None and "CPy" in frame:
        m = _COMPILED.search(frame)
        if m:
            hit = COMPILED_STAGES.get(m.group(1))
    return hit


def summary(path: Path) -> list[tuple[str, int, float]]:
    """Samples per stage of a collapsed-stack file, innermost matching frame wins."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        total += int(n)
        frames = stack.split(";")
        stage = "other"
        for frame in reversed(frames):
            hit = stage_of(frame)
            if hit:
                stage = hit
                break
        counts[stage] += int(n)
    return [(k, v, 100.0 * v / max(total, 1)) for k, v in counts.most_common()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("direction", nargs="?", choices=["mqtt-kafka", "kafka-mqtt"])
    ap.add_argument("load", nargs="?", choices=["max", "rate"])
    ap.add_argument("--variant", default="mqferry-alo")
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--count", type=int, help="messages (default: the standard load's)")
    ap.add_argument("-o", "--output", type=Path, default=WORK / "profile")
    ap.add_argument("--summary", type=Path, help="only fold an existing collapsed-stack file")
    ap.add_argument("--native", action="store_true",
                    help="sample C frames too (the compiled modules' functions)")
    args = ap.parse_args()
    if args.summary is None:
        if args.direction is None or args.load is None:
            ap.error("direction and load are required")
        load = dict(loads(False)[args.load])
        if args.count:
            load["count"] = args.count
        out = args.output.with_suffix(".txt")
        with bridged(args.variant, args.direction, Brokers()) as (bridge, prefix, topic):
            spy = subprocess.Popen(
                [str(VENV_BIN / "py-spy"), "record", "--pid", str(bridge.pids()[0]),
                 "--rate", str(args.rate), "--format", "raw", "--idle", "-o", str(out),
                 *(["--native"] if args.native else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            result = run(spec_for(args.direction, Brokers(), prefix, topic, **load),
                         watch=bridge.pids)
            spy.send_signal(subprocess.signal.SIGINT)
            spy.wait(30)
        print(f"lost: {result['loss']['lost']}; resources: {result['resources']}")
        args.summary = out
    rows = summary(args.summary)
    busy = sum(n for stage, n, _ in rows if not stage.startswith("idle"))
    print(f"{'stage':42s} {'samples':>8s} {'of all':>7s} {'of busy':>8s}")
    for stage, n, pct in rows:
        share = "" if stage.startswith("idle") else f"{100.0 * n / max(busy, 1):7.1f}%"
        print(f"{stage:42s} {n:8d} {pct:6.1f}% {share:>8s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

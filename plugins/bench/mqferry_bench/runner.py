"""One benchmark run: generators in their own processes, a verifier in this one, and the tally.

A run starts the verifier first (so it sees everything), then the generator processes, which
connect and wait until all are ready before the first message. When they are done it waits until
everything they published arrived, or until nothing new arrived for ``idle_timeout`` seconds, then
``settle`` seconds more to catch late duplicates.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mqferry_bench.kafka_load import ProducerPlan, produce
from mqferry_bench.mqtt_load import PublisherPlan, publish
from mqferry_bench.resources import ProcessWatch
from mqferry_bench.stats import timing

Direction = Literal["mqtt-kafka", "kafka-mqtt"]


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """What to send, where, and how to verify it.

    Attributes:
        direction: ``mqtt-kafka`` (publish on MQTT, read Kafka) or ``kafka-mqtt``.
        mqtt_host: MQTT broker host.
        mqtt_port: MQTT broker port.
        kafka: Kafka bootstrap servers.
        mqtt_topic: MQTT -> Kafka: the topic prefix (publisher ``pN`` publishes to
            ``<prefix>/pN``); Kafka -> MQTT: the topic filter the verifier subscribes to.
        kafka_topic: the Kafka topic read (MQTT -> Kafka) or written (Kafka -> MQTT).
        streams: publisher connections (MQTT) or record keys (Kafka), one stream each.
        count: messages in all, or ``None`` to send for ``duration`` seconds.
        duration: seconds to send when ``count`` is ``None``.
        rate: messages per second in all; 0 for as fast as possible.
        size: payload size in bytes.
        qos: MQTT QoS of the publishers (MQTT -> Kafka) or of the subscription.
        inflight: most unacknowledged messages per MQTT publisher.
        idle_timeout: give up waiting for deliveries after this many seconds without one.
        settle: seconds to keep reading after everything arrived (late duplicates).
        text_seqs: per-stream sequence numbers ``[start, stop)`` sent as non-JSON text.
        oversize: per-stream sequence numbers sent with another payload size.
        text_filtered: the bridge's rule is expected to drop the text payloads (a rule that
            reads ``payload.x`` fails on them), so they are not counted as lost.
    """

    direction: Direction
    mqtt_host: str
    mqtt_port: int
    kafka: str
    mqtt_topic: str
    kafka_topic: str
    streams: int = 4
    count: int | None = 100_000
    duration: float | None = None
    rate: float = 0.0
    size: int = 200
    qos: int = 1
    inflight: int = 1000
    idle_timeout: float = 60.0
    settle: float = 2.0
    text_seqs: tuple[int, int] = (0, 0)
    oversize: dict[int, int] = field(default_factory=dict)
    text_filtered: bool = False

    def __post_init__(self) -> None:
        if self.direction not in ("mqtt-kafka", "kafka-mqtt"):
            raise ValueError(f"direction: expected mqtt-kafka or kafka-mqtt, got "
                             f"{self.direction!r}")
        if self.count is None and not self.duration:
            raise ValueError("set a message count or a duration")
        if self.count is not None and self.count < self.streams:
            raise ValueError(f"count ({self.count}) must be at least streams ({self.streams})")
        if self.streams < 1:
            raise ValueError("streams must be at least 1")
        if self.qos not in (0, 1):
            raise ValueError(f"qos: expected 0 or 1, got {self.qos}")
        if self.size < 1 or self.rate < 0:
            raise ValueError("size must be positive and rate not negative")

    @property
    def keys(self) -> list[str]:
        """The stream keys, ``p0`` .. ``pN-1``."""
        return [f"p{i}" for i in range(self.streams)]


def _worker(fn: Callable[..., dict[str, Any]], plan: Any, shared: Any, go: Any,
            out: Any) -> None:
    try:
        out.put(fn(plan, shared, go))
    except BaseException as exc:  # reported by the parent
        out.put({"error": f"{type(exc).__name__}: {exc}"})


class BenchRun:
    """One run of a :class:`LoadSpec`.

    Args:
        spec: what to run.
        watch: returns the pids of the bridge under test (CPU and memory are measured for
            them); ``None`` to measure nothing.
    """

    def __init__(self, spec: LoadSpec, watch: Callable[[], Iterable[int]] | None = None) -> None:
        self.spec = spec
        self._ctx = mp.get_context("spawn")
        self._go = self._ctx.Event()
        self._out: Any = self._ctx.Queue()
        self._procs: list[Any] = []
        self._shared: list[Any] = []
        self._watch = ProcessWatch(watch) if watch is not None else None
        self._verifier: Any = None
        self.started = 0.0
        self.results: list[dict[str, Any]] = []

    # -- progress ---------------------------------------------------------------------------

    def sent(self) -> int:
        """Messages the generators handed to their client so far."""
        return sum(int(s[0]) for s in self._shared)

    def acked(self) -> int:
        """Messages the brokers acknowledged to the generators so far."""
        return sum(int(s[1]) for s in self._shared)

    def delivered(self) -> int:
        """Distinct messages the verifier saw so far."""
        return int(self._verifier.delivered) if self._verifier is not None else 0

    @property
    def verifier(self) -> Any:
        """The run's verifier (``tally`` holds every arrival), once :meth:`start` made it."""
        return self._verifier

    def generating(self) -> bool:
        """Whether a generator process is still running."""
        return any(p.is_alive() for p in self._procs) and len(self.results) < len(self._procs)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        """Start the verifier, then the generators; return once the first message is sent."""
        spec = self.spec
        if spec.direction == "mqtt-kafka":
            from mqferry_bench.kafka_verify import KafkaVerifier

            self._verifier = KafkaVerifier(bootstrap=spec.kafka, topic=spec.kafka_topic)
            jobs: list[tuple[Callable[..., dict[str, Any]], Any]] = [
                (publish, plan) for plan in self._publisher_plans()]
        else:
            from mqferry_bench.mqtt_verify import MqttVerifier

            self._verifier = MqttVerifier(host=spec.mqtt_host, port=spec.mqtt_port,
                                          topic_filter=spec.mqtt_topic, qos=spec.qos)
            jobs = [(produce, self._producer_plan())]
        self._verifier.start()
        for i, (fn, plan) in enumerate(jobs):
            shared = self._ctx.Array("q", 3, lock=False)
            proc = self._ctx.Process(target=_worker, args=(fn, plan, shared, self._go,
                                                           self._out),
                                     name=f"mqferry-bench-gen-{i}", daemon=True)
            proc.start()
            self._procs.append(proc)
            self._shared.append(shared)
        deadline = time.monotonic() + timeout
        while not all(s[2] for s in self._shared):
            self._collect(0.05)
            failed = [r["error"] for r in self.results if "error" in r]
            if failed:
                self._abort()
                raise RuntimeError(f"a load generator failed: {failed[0]}")
            dead = [p for p in self._procs if not p.is_alive()]
            if dead and not self.results:
                self._collect(1.0)
                if not self.results:
                    self._abort()
                    raise RuntimeError(f"a load generator exited with code {dead[0].exitcode} "
                                       f"before it was ready")
            if time.monotonic() > deadline:
                self._abort()
                raise TimeoutError(f"the load generators were not ready in {timeout} s")
        if self._watch is not None:
            self._watch.start()
        self.started = time.time()
        self._go.set()

    def _publisher_plans(self) -> list[PublisherPlan]:
        s = self.spec
        counts = _split(s.count, s.streams)
        return [PublisherPlan(host=s.mqtt_host, port=s.mqtt_port, topic=f"{s.mqtt_topic}/{key}",
                              key=key, count=counts[i], duration=s.duration,
                              rate=s.rate / s.streams, size=s.size, qos=s.qos,
                              inflight=s.inflight, text_seqs=s.text_seqs,
                              oversize=dict(s.oversize))
                for i, key in enumerate(s.keys)]

    def _producer_plan(self) -> ProducerPlan:
        s = self.spec
        return ProducerPlan(bootstrap=s.kafka, topic=s.kafka_topic, keys=tuple(s.keys),
                            count=s.count, duration=s.duration, rate=s.rate, size=s.size,
                            text_seqs=s.text_seqs, oversize=tuple(s.oversize.items()))

    def _collect(self, wait: float) -> None:
        try:
            result = self._out.get(timeout=wait)
        except queue.Empty:
            return
        self.results.append(result)

    def _abort(self) -> None:
        for p in self._procs:
            if p.is_alive():
                p.kill()
        if self._verifier is not None:
            self._verifier.stop()

    def wait_generators(self, tick: Callable[[], None] | None = None) -> None:
        """Wait until every generator finished (and had its messages acknowledged)."""
        while len(self.results) < len(self._procs):
            self._collect(0.2)
            if tick is not None:
                tick()
            if len(self.results) < len(self._procs) and not any(p.is_alive()
                                                                  for p in self._procs):
                # Every generator has exited: what they put is in the queue (one result each,
                # several may be waiting), unless one died without a result.
                before = -1
                while len(self.results) < len(self._procs) and len(self.results) != before:
                    before = len(self.results)
                    self._collect(1.0)
                if len(self.results) < len(self._procs):
                    raise RuntimeError("a load generator died without a result")
        for p in self._procs:
            p.join(10)
        errors = [r["error"] for r in self.results if "error" in r]
        if errors:
            self._abort()
            raise RuntimeError(f"a load generator failed: {errors[0]}")

    def published(self) -> dict[str, int]:
        """Messages published per stream key (after :meth:`wait_generators`)."""
        if self.spec.direction == "kafka-mqtt":
            return dict(self.results[0]["published"])
        return {r["key"]: int(r["published"]) for r in self.results}

    def drain(self, tick: Callable[[], None] | None = None) -> None:
        """Wait until everything published arrived, or nothing arrived for ``idle_timeout``."""
        want = sum(self.published().values())
        lo, hi = self.spec.text_seqs
        if self.spec.text_filtered and hi > lo:
            want -= sum(max(0, min(hi, n) - lo) for n in self.published().values())
        last, last_change = -1, time.monotonic()
        while self._verifier.delivered < want:
            now = self._verifier.arrivals
            if now != last:
                last, last_change = now, time.monotonic()
            elif time.monotonic() - last_change > self.spec.idle_timeout:
                break
            if tick is not None:
                tick()
            time.sleep(0.1)
        time.sleep(self.spec.settle)

    def finish(self) -> dict[str, Any]:
        """Stop the verifier and measurement; the run's result as a JSON-ready dict."""
        ended = time.time()
        usage = self._watch.stop() if self._watch is not None else None
        self._verifier.stop()
        published = self.published()
        report = self._verifier.tally.report(
            published, self.spec.text_seqs if self.spec.text_filtered else (0, 0))
        times = timing(self._verifier.tally.samples)
        sent_total = sum(published.values())
        acked = sum(int(r["acked"]) for r in self.results)
        first = min(float(r["started"]) for r in self.results)
        last = max(float(r["finished"]) for r in self.results)
        spec = asdict(self.spec)
        spec["oversize"] = {str(k): v for k, v in self.spec.oversize.items()}
        result: dict[str, Any] = {
            "spec": spec,
            "publish": {"published": sent_total, "acked": acked,
                        "unacked": sent_total - acked if self.spec.direction == "kafka-mqtt"
                        or self.spec.qos else 0,
                        "rate": round(sent_total / (last - first), 1) if last > first else None,
                        "errors": sum(int(r.get("errors", 0)) for r in self.results)},
            "loss": report.as_dict(),
            "timing": times.as_dict(),
            "elapsed_s": round(ended - self.started, 2),
        }
        if usage is not None:
            result["resources"] = usage.as_dict(report.delivered)
        return result


def _split(total: int | None, parts: int) -> list[int | None]:
    if total is None:
        return [None] * parts
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def run(spec: LoadSpec, *, watch: Callable[[], Iterable[int]] | None = None,
        tick: Callable[[BenchRun], None] | None = None) -> dict[str, Any]:
    """Run ``spec`` to the end and return its result (see :meth:`BenchRun.finish`).

    Args:
        spec: what to run.
        watch: pids of the bridge under test, for its CPU and memory figures.
        tick: called about every 0.1-0.2 s with the run (progress display, fault injection).
    """
    bench = BenchRun(spec, watch)
    bench.start()
    step = (lambda: tick(bench)) if tick is not None else None
    try:
        bench.wait_generators(step)
        bench.drain(step)
    except BaseException:
        bench._abort()
        raise
    return bench.finish()

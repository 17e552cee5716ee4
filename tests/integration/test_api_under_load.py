"""The REST API cannot hurt the data path: a real ``mqferry run`` bridges a steady MQTT stream to
Kafka while its API is hammered with 900 KB bodies (valid rule tests, over-long descriptions),
200-deep bodies, bodies over the size limit and hundreds of rule creates.

mosquitto_pub publishes, kcat witnesses: every message arrives in Kafka, none late by more than a
generous budget, on one MQTT session; the API answers each hostile body with its 4xx, never a 500,
and the file written back holds every created rule and none of the refused ones.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.mqferry_process import MqferryProcess, api_key, free_port

pytestmark = pytest.mark.integration

COUNT = 2000
RATE = 100.0  # messages per second
#: Generous on a shared machine; before, single API calls stalled the process for seconds.
LATENCY_BUDGET_MS = 5000
KB = 1024


def _stream(broker: Any, topic: str) -> threading.Thread:
    """Publish ``COUNT`` numbered, timestamped messages at ``RATE`` with ``mosquitto_pub -l``."""
    exe = shutil.which("mosquitto_pub")
    if exe is None:
        pytest.skip("mosquitto_pub is not installed")
    proc = subprocess.Popen([exe, "-h", broker.host, "-p", str(broker.port), "-V", "5",
                             "-q", "1", "-t", topic, "-l"], stdin=subprocess.PIPE, text=True)

    def feed() -> None:
        assert proc.stdin is not None
        start = time.monotonic()
        for i in range(COUNT):
            proc.stdin.write(json.dumps({"n": i, "t": time.time()}) + "\n")
            proc.stdin.flush()
            delay = start + (i + 1) / RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        proc.stdin.close()
        proc.wait(60)

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def _deep(depth: int) -> bytes:
    return ('{"sql": "SELECT 1 FROM \\"t/#\\"", "context": ' + '{"a": ' * depth + "1"
            + "}" * depth + "}").encode()


def _requests(p: str) -> list[tuple[str, str, dict[str, Any], int]]:
    pad = "p" * (900 * KB)
    as_json = {"content-type": "application/json"}
    out: list[tuple[str, str, dict[str, Any], int]] = []
    for i in range(100):
        out.append(("POST", "/rule_test", {"json": {
            "sql": 'SELECT payload.v AS v FROM "t/#"',
            "context": {"payload": json.dumps({"v": i, "pad": pad})}}}, 200))
        out.append(("POST", "/rules", {"json": {"id": f"big{i}", "sql": f'SELECT 1 FROM "{p}/x"',
                                                "description": pad}}, 400))
        out.append(("POST", "/rules", {"content": _deep(200), "headers": as_json}, 400))
        out.append(("POST", "/rules", {"json": {"id": f"n{i}", "sql": f'SELECT 1 FROM "{p}/n{i}"'}},
                    201))
        out.append(("POST", "/rules", {"json": {"id": f"m{i}", "sql": f'SELECT 1 FROM "{p}/m{i}"'}},
                    201))
    for _ in range(10):
        out.append(("POST", "/rules", {"content": b" " * (2048 * KB), "headers": as_json}, 413))
    return out


def _hammer(base: str, auth: tuple[str, str], todo: list[tuple[str, str, dict[str, Any], int]],
            workers: int, deadline: float) -> list[str]:
    """Send every request from ``workers`` threads; the answers that were not the expected."""
    pending: queue.Queue[tuple[str, str, dict[str, Any], int]] = queue.Queue()
    for item in todo:
        pending.put(item)
    wrong: list[str] = []

    def work() -> None:
        with httpx.Client(base_url=base, auth=auth, timeout=30) as api:
            while time.monotonic() < deadline:
                try:
                    method, path, kwargs, expected = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    status = api.request(method, path, **kwargs).status_code
                except httpx.HTTPError as exc:
                    wrong.append(f"{method} {path}: {exc!r}")
                    continue
                if status != expected:
                    wrong.append(f"{method} {path}: {status}, expected {expected}")
        wrong.append("the deadline passed with requests unsent")

    threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 60)
    return wrong


@pytest.fixture
def instance(kafka_bootstrap, mqtt_broker, new_topic, tmp_path):
    p = f"load-{uuid.uuid4().hex[:8]}"
    topic = new_topic()
    port = free_port()
    config = {
        "mqtt": {"server": f"{mqtt_broker.host}:{mqtt_broker.port}", "clientid": f"mqferry-{p}"},
        "api": {"listen": f"127.0.0.1:{port}"},
        "data_dir": str(tmp_path / "data"),
        "connectors": {"kafka_producer": {"k": {"bootstrap_hosts": kafka_bootstrap}}},
        "actions": {"kafka_producer": {"sink": {"connector": "k",
                                                "parameters": {"topic": topic}}}},
        "rules": {"bridge": {"sql": f'SELECT payload.n AS n, payload.t AS t FROM "{p}/in"',
                             "actions": ["kafka_producer:sink"]}},
    }
    proc = MqferryProcess(config, tmp_path)
    auth = api_key(proc.config_path)
    proc.start()
    yield {"p": p, "topic": topic, "base": f"http://127.0.0.1:{port}/api/v5", "auth": auth,
           "proc": proc}
    if proc.proc is not None and proc.proc.poll() is None:
        proc.kill()


def test_messages_keep_flowing_while_the_api_is_hammered(instance, mqtt_broker, kcat_consume):
    p, proc = instance["p"], instance["proc"]
    proc.wait_ready(actions=1)
    proc.wait_for_log("API listening")
    feeder = _stream(mqtt_broker, f"{p}/in")
    time.sleep(1.0)  # the stream is under way before the first request
    wrong = _hammer(instance["base"], instance["auth"], _requests(p), workers=4,
                    deadline=time.monotonic() + 180)
    feeder.join(COUNT / RATE + 120)
    assert not feeder.is_alive()

    records = kcat_consume(instance["topic"], COUNT, timeout=90)
    numbers = {json.loads(r["payload"])["n"] for r in records}
    missing = sorted(set(range(COUNT)) - numbers)
    late = sorted(r["ts"] - json.loads(r["payload"])["t"] * 1000 for r in records)
    worst = late[-1] if late else None
    p99 = late[int(len(late) * 0.99)] if late else None
    print(f"{len(records)} records; latency p99 {p99} ms, max {worst} ms; "
          f"{len(wrong)} unexpected answers")
    assert wrong == []
    assert missing == [], f"{len(missing)} messages never reached Kafka"
    assert worst is not None and worst < LATENCY_BUDGET_MS, f"a message took {worst:.0f} ms"
    assert sum("connected to MQTT broker" in line for line in proc.lines) == 1

    assert proc.terminate() == 0
    saved = yaml.safe_load(proc.config_path.read_text())
    assert {f"n{i}" for i in range(100)} | {f"m{i}" for i in range(100)} <= set(saved["rules"])
    assert not any(rid.startswith("big") for rid in saved["rules"])

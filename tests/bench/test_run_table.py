"""The standard set's table: ratios against the baselines use whole-run rates."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import run


def _result(variant: str, whole: float, window: float, rep: int) -> dict:
    return {
        "spec": {"direction": "mqtt-kafka"}, "load": "max", "variant": variant,
        "label": f"{variant} max", "repetition": rep, "loadavg": [0.5 + rep, 0.4, 0.3],
        "publish": {"published": 1000},
        "loss": {"delivered": 1000, "lost": 0, "duplicated": 0, "out_of_order": 0},
        "timing": {"throughput_median": window, "throughput_overall": whole,
                   "latency_ms": {"p50": 1.0, "p99": 2.0, "max": 3.0}},
        "resources": {"cpu_s_per_100k": 1.0, "peak_rss_mb": 50.0},
    }


def test_the_ratio_against_the_pipe_uses_the_whole_run_rate_not_the_window_median():
    results = [
        _result("pipe", 100.0, 50.0, 1), _result("pipe", 120.0, 60.0, 2),
        _result("pipe", 80.0, 40.0, 3),
        # faster than the pipe by its window median, slower over the whole run
        _result("mqferry-alo", 70.0, 90.0, 1), _result("mqferry-alo", 90.0, 95.0, 2),
        _result("mqferry-alo", 80.0, 85.0, 3),
    ]
    table = run.markdown(results, "mqtt-kafka", "max").splitlines()
    assert "msg/s whole run (median; range) | vs pipe" in table[0]
    assert len(table[1].split("|")) == len(table[0].split("|"))
    pipe = [c.strip() for c in table[2].split("|")]
    alo = [c.strip() for c in table[3].split("|")]
    assert pipe[8:10] == ["100 (80-120)", "1.00"]
    assert alo[8:10] == ["80 (70-90)", "0.80"]
    assert alo[11] == "90 (85-95)"
    assert alo[-2] == "1.50-3.50"


def test_a_run_without_a_whole_run_rate_shows_a_dash():
    r = _result("pipe", 100.0, 50.0, 1)
    del r["timing"]["throughput_overall"]
    row = run.markdown([r], "mqtt-kafka", "max").splitlines()[2]
    assert [c.strip() for c in row.split("|")][8:10] == ["-", "-"]


def test_each_runs_p99_is_listed_with_the_broker_pauses_of_20_ms_or_more_in_it():
    quiet, paused = _result("mqferry-alo", 80.0, 90.0, 1), _result("mqferry-alo", 80.0, 90.0, 2)
    quiet["broker_pauses_ms"] = [6.0]
    paused["broker_pauses_ms"] = [172.0, 12.0, 104.7]
    table = run.markdown([quiet, paused], "mqtt-kafka", "max")
    assert "- mqferry-alo: 2.0; 2.0 (broker paused 172, 105 ms)" in table.splitlines()


def test_broker_pauses_are_read_from_the_jvm_log_within_the_run(tmp_path):
    import harness

    log = tmp_path / "gc.log"
    log.write_text(
        '[2026-12-06T08:47:06.561+0000][534.044s] Safepoint "G1CollectForAllocation", Time '
        "since last: 1 ns, Reaching safepoint: 1 ns, Cleanup: 1 ns, At safepoint: 1 ns, "
        "Total: 23423000 ns\n"
        "[2026-12-06T08:47:06.600+0000][534.100s] GC(50) Pause Young 23.4ms\n"
        '[2026-12-06T08:47:07.000+0000][534.500s] Safepoint "Cleanup", Time since last: 1 ns, '
        "Reaching safepoint: 1 ns, Cleanup: 1 ns, At safepoint: 1 ns, Total: 90000 ns\n"
        '[2026-12-06T08:49:52.968+0000][580.209s] Safepoint "Cleanup", Time since last: 1 ns, '
        "Reaching safepoint: 1 ns, Cleanup: 1 ns, At safepoint: 1 ns, Total: 1840086080 ns\n")
    start = 1796546826.0  # 2026-12-06 08:47:06 UTC
    pauses = harness.broker_pauses(start, start + 60, log=log)
    assert [(name, round(ms, 1)) for _, name, ms in pauses] == [("G1CollectForAllocation", 23.4)]
    assert harness.broker_pauses(start, start + 600, log=tmp_path / "none.log") == []


def test_a_run_in_which_the_mqtt_broker_saved_its_store_says_so_beside_its_p99():
    saved, quiet = _result("mqferry-amo", 80.0, 90.0, 1), _result("mqferry-amo", 80.0, 90.0, 2)
    saved["broker_pauses_ms"] = [25.0]
    saved["mqtt_saved"] = True
    quiet["mqtt_saved"] = False
    table = run.markdown([saved, quiet], "mqtt-kafka", "max")
    assert ("- mqferry-amo: 2.0 (broker paused 25 ms; MQTT broker saved its store); 2.0"
            in table.splitlines())


def test_the_mqtt_brokers_save_is_read_from_its_stores_modification_time(tmp_path):
    import os

    import harness

    store = tmp_path / "mosquitto.db"
    store.write_bytes(b"store")
    saved = 1796594424.38  # 2026-12-06 22:00:24.38 UTC
    os.utime(store, (saved, saved))
    assert harness.mqtt_saved(saved - 5, saved + 3, store=store) == saved
    assert harness.mqtt_saved(saved + 0.1, saved + 10, store=store) is None
    assert harness.mqtt_saved(saved - 5, saved + 3, store=tmp_path / "none.db") is None

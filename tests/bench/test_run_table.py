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

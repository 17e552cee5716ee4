from __future__ import annotations

import pytest

from mqferry_bench.stats import Tally, percentile, timing


def feed(tally, key, seqs, t=100.0):
    for s in seqs:
        tally.add(key, s, int(t * 1e6) - 5000, t)


def test_clean_run_has_nothing_lost_or_duplicated():
    t = Tally()
    feed(t, "p0", range(10))
    feed(t, "p1", range(5))
    r = t.report({"p0": 10, "p1": 5})
    assert (r.published, r.delivered, r.lost, r.duplicated, r.out_of_order) == (15, 15, 0, 0, 0)
    assert r.per_key["p1"] == {"published": 5, "expected": 5, "delivered": 5, "lost": 0,
                               "duplicated": 0, "out_of_order": 0, "filtered_delivered": 0}


def test_lost_duplicated_and_reordered_are_counted_per_key():
    t = Tally()
    feed(t, "p0", [0, 1, 3, 2, 3, 3, 5])  # 4 lost; 3 twice more; 2 after 3
    r = t.report({"p0": 6})
    assert r.per_key["p0"]["lost"] == 1
    assert r.per_key["p0"]["duplicated"] == 2
    assert r.per_key["p0"]["out_of_order"] == 1
    assert r.delivered == 5


def test_a_stream_that_never_arrived_is_all_lost():
    t = Tally()
    r = t.report({"p0": 3})
    assert (r.delivered, r.lost) == (0, 3)


def test_unknown_streams_and_foreign_payloads_are_foreign_not_delivered():
    t = Tally()
    feed(t, "zz", [0, 1])
    t.add_foreign()
    feed(t, "p0", [0, 9])  # 9 is beyond what p0 published
    r = t.report({"p0": 1})
    assert r.delivered == 1
    assert r.foreign == 4


def test_filtered_sequences_are_not_lost_and_their_arrivals_are_counted_apart():
    t = Tally()
    feed(t, "p0", [0, 1, 4, 5, 2])
    r = t.report({"p0": 6}, filtered=(2, 4))
    assert r.expected == 4
    assert r.delivered == 4
    assert r.lost == 0
    assert r.filtered_delivered == 1


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.5) == 0.0


def test_throughput_is_the_median_of_full_one_second_windows():
    # 100/s for 5 s, then one slow second with 10: full windows are seconds 1..5.
    samples = [(1000.0 + i / 100, 3.0) for i in range(500)]
    samples += [(1005.0 + i / 10, 5.0) for i in range(10)]
    samples.append((1006.5, 7.0))
    tm = timing(samples)
    assert tm.windows == 5
    assert tm.throughput_median == 100
    assert tm.latency_ms["max"] == 7.0
    assert tm.latency_ms["p50"] == 3.0


def test_latency_is_receive_time_minus_send_time():
    t = Tally()
    t.add("p0", 0, 1_000_000_000_000, 1_000_000.250)
    assert t.samples[0][1] == pytest.approx(250.0)


def test_timing_of_nothing_is_zero():
    assert timing([]).throughput_median == 0.0

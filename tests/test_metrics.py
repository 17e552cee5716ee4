import pytest

from mqferry._metrics import Rate, action_metrics, rule_metrics


def test_snapshot_has_every_emqx_counter_at_zero_and_the_rates():
    snap = rule_metrics("r").snapshot()
    for name in ("matched", "passed", "filtered", "failed", "failed.exception",
                 "failed.no_result", "actions.total", "actions.success", "actions.failed",
                 "rate", "rate_max", "rate_last5m"):
        assert snap[name] == 0


def test_gauges_are_read_at_snapshot_time():
    m = action_metrics("kafka_producer:a")
    queue = [1, 2, 3]
    m.gauge("queuing", lambda: len(queue))
    assert m.snapshot()["queuing"] == 3
    queue.clear()
    assert m.snapshot()["queuing"] == 0


def test_rate_over_the_last_seconds_and_its_maximum():
    r = Rate()
    for second, value in enumerate([0, 100, 200, 300, 400, 500, 500, 500, 500, 500, 500]):
        r.sample(value, now=float(second))
    figures = r.figures()
    assert figures["rate_max"] == pytest.approx(100.0)
    assert figures["rate"] == pytest.approx(0.0)
    assert figures["rate_last5m"] == pytest.approx(50.0)


def test_metrics_tick_feeds_the_rate():
    m = action_metrics("a")
    m.tick(now=0.0)
    m.inc("matched", 30)
    m.tick(now=1.0)
    assert m.snapshot()["rate"] == pytest.approx(30.0)


def test_reset_zeroes_counters():
    m = action_metrics("a")
    m.inc("success", 5)
    m.reset()
    assert m.get("success") == 0


def test_a_gauge_that_is_unknown_or_fails_is_left_out_and_the_rest_still_read(caplog,
                                                                               monkeypatch):
    import mqferry._metrics as metrics_module

    monkeypatch.setattr(metrics_module, "_warned", {})  # each failing gauge logs once a minute
    m = action_metrics("plugin:a")
    m.gauge("queuing", lambda: 4)
    m.gauge("lag", lambda: None)  # not known yet

    def broken() -> float:
        raise RuntimeError("gone")

    m.gauge("inflight", broken)
    m.gauge("odd", lambda: "many")
    snap = m.snapshot()
    assert snap["queuing"] == 4 and "lag" not in snap and "odd" not in snap
    assert "inflight" not in snap
    assert {s.name for s in m.samples() if s.gauge} >= {"queuing"}
    assert not {"lag", "odd", "inflight"} & {s.name for s in m.samples()}
    assert "plugin:a: the gauge inflight failed" in caplog.text
    assert "plugin:a: the gauge odd gave 'many'" in caplog.text


def test_metrics_can_be_subclassed_by_a_plugin():
    from mqferry import Metrics

    class Counting(Metrics):
        def inc(self, name: str, n: int = 1) -> None:
            super().inc(name, n * 2)

    m = Counting("plugin:b")
    m.inc("matched")
    assert m.get("matched") == 2


def test_each_failing_series_of_a_gauge_is_logged(caplog, monkeypatch):
    import mqferry._metrics as metrics_module

    monkeypatch.setattr(metrics_module, "_warned", {})
    m = action_metrics("plugin:c")
    m.series("lag", ("topic", "partition"))

    def broken() -> float:
        raise RuntimeError("gone")

    m.gauge("lag", broken, labels={"topic": "t", "partition": "0"})
    m.gauge("lag", broken, labels={"topic": "t", "partition": "1"})
    m.gauge("lag", lambda: 3, labels={"topic": "t", "partition": "2"})
    snap = m.snapshot()
    assert snap["lag"] == 3 and snap["lag.t:2"] == 3 and "lag.t:0" not in snap
    # one series' log line does not hide the other's
    assert "the gauge lag.t:0 failed" in caplog.text and "the gauge lag.t:1 failed" in caplog.text

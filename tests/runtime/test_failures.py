"""Rate-limited failure logging."""

from __future__ import annotations

import logging

from mqferry._runtime.failures import LogLimiter


def test_one_line_per_key_per_interval_then_the_count_of_the_rest(caplog, monkeypatch):
    now = [100.0]
    monkeypatch.setattr("mqferry._runtime.failures.time.monotonic", lambda: now[0])
    limiter = LogLimiter(logging.getLogger("test.limiter"), interval=10.0)
    with caplog.at_level(logging.WARNING, logger="test.limiter"):
        assert limiter.warning("a", "rule %s failed", "a")
        for _ in range(5):
            assert not limiter.warning("a", "rule %s failed", "a")
        assert limiter.warning("b", "rule %s failed", "b")  # another key is not held back
        now[0] += 10.5
        assert limiter.warning("a", "rule %s failed", "a")
    assert [r.getMessage() for r in caplog.records] == [
        "rule a failed", "rule b failed", "rule a failed (5 more like it in the last 10s)"]

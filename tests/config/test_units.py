import math

import pytest

from mqferry._config import parse_duration, parse_size
from mqferry._config.units import format_duration, format_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5.0), ("100ms", 0.1), ("1.5m", 90.0), ("2h", 7200.0), ("1d", 86400.0),
     ("250", 0.25), (250, 0.25), ("infinity", math.inf), (" 3S ", 3.0)],
)
def test_durations_as_emqx_writes_them(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5x", "", "s", "-1s", True, None, "5 seconds"])
def test_bad_durations_name_the_value(bad):
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("text", "n"),
    [("896KB", 896 * 1024), ("10MB", 10 * 1024**2), ("1GB", 1024**3), ("1024", 1024),
     (512, 512), ("2gb", 2 * 1024**3), ("100B", 100)],
)
def test_sizes_as_emqx_writes_them(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("bad", ["10XB", "", "MB", True, -1, 1.5])
def test_bad_sizes_are_refused(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


@pytest.mark.parametrize("seconds", [0.1, 5.0, 60.0, 7200.0, 0.25, math.inf])
def test_durations_round_trip(seconds):
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("n", [1, 1024, 896 * 1024, 10 * 1024**2, 1000])
def test_sizes_round_trip(n):
    assert parse_size(format_size(n)) == n

"""A config file is read for a reload only once it stopped changing (an editor's save)."""

from __future__ import annotations

import time

import pytest

from mqferry._config.settle import read_settled
from mqferry._errors import ConfigError


def test_a_file_caught_between_two_writes_is_read_once_whole(tmp_path):
    path = tmp_path / "mqferry.yaml"
    f = path.open("w")  # an editor saving in place: truncated, then written in two parts
    f.write("rules:\n  r1: {sql: a}\n")
    f.flush()
    waits = []

    def the_second_part_lands_meanwhile(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:
            f.write("  r2: {sql: b}\n")
            f.close()

    assert read_settled(path, settle=0.3, sleep=the_second_part_lands_meanwhile) == \
        b"rules:\n  r1: {sql: a}\n  r2: {sql: b}\n"
    assert waits == [0.3, 0.3]  # the first look changed under it: it looked once more


def test_a_file_that_keeps_changing_is_refused(tmp_path):
    path = tmp_path / "mqferry.yaml"
    path.write_text("a: 0\n")
    writes = []

    def an_editor_writes_meanwhile(seconds: float) -> None:
        # every wait sees another save (and lasts its time), as with a writer that never stops
        time.sleep(seconds)
        writes.append(len(writes) + 1)
        path.write_text(f"a: {len(writes)}\n")

    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        read_settled(path, settle=0.05, timeout=0.5, sleep=an_editor_writes_meanwhile)
    assert caught.value.problems == [("", f"{path} kept changing for 0.5s (still being written?); "
                                          "nothing was changed: reload once it is saved")]
    # it compared again until the time was up (how many times depends on the machine's load)
    assert time.monotonic() - started >= 0.5 and len(writes) >= 2


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(ConfigError) as caught:
        read_settled(tmp_path / "nope.yaml", settle=0.01)
    assert caught.value.problems == [
        ("", f"cannot read {tmp_path / 'nope.yaml'}: No such file or directory")]

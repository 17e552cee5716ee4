"""A config file is read for a reload only once it stopped changing (an editor's save)."""

from __future__ import annotations

import threading
import time

import pytest

from mqferry._config.settle import read_settled
from mqferry._errors import ConfigError


def write_in_two_parts(path, first, second, pause):
    """Truncate and write ``first`` now, ``second`` after ``pause`` seconds (in a thread), as an
    editor saving in place; returns the thread."""
    f = path.open("w")
    f.write(first)
    f.flush()

    def rest():
        time.sleep(pause)
        f.write(second)
        f.close()

    t = threading.Thread(target=rest)
    t.start()
    return t


def test_a_file_caught_between_two_writes_is_read_once_whole(tmp_path):
    path = tmp_path / "mqferry.yaml"
    writer = write_in_two_parts(path, "rules:\n  r1: {sql: a}\n", "  r2: {sql: b}\n", 0.1)
    try:
        assert read_settled(path, settle=0.3) == b"rules:\n  r1: {sql: a}\n  r2: {sql: b}\n"
    finally:
        writer.join()


def test_a_file_that_keeps_changing_is_refused(tmp_path):
    path = tmp_path / "mqferry.yaml"
    path.write_text("a: 0\n")
    stop = threading.Event()

    def keep_writing():
        i = 0
        while not stop.is_set():
            i += 1
            path.write_text(f"a: {i}\n")
            time.sleep(0.01)

    t = threading.Thread(target=keep_writing)
    t.start()
    try:
        with pytest.raises(ConfigError) as caught:
            read_settled(path, settle=0.05, timeout=0.5)
    finally:
        stop.set()
        t.join()
    assert caught.value.problems == [("", f"{path} kept changing for 0.5s (still being written?); "
                                          "nothing was changed: reload once it is saved")]


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(ConfigError) as caught:
        read_settled(tmp_path / "nope.yaml", settle=0.01)
    assert caught.value.problems == [
        ("", f"cannot read {tmp_path / 'nope.yaml'}: No such file or directory")]

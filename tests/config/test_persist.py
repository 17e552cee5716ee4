"""The write-back of a running instance: off the event loop, a burst coalesced into few writes
ending with the last change, crash-safe, never over someone else's edit; and the rendering that
reuses the text of unchanged entries always reads back as the mapping."""

from __future__ import annotations

import asyncio
import os

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mqferry._config import persist
from mqferry._config.layout import Layout
from mqferry._config.persist import ConfigWriter, write_config

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30),
                    st.sampled_from(["yes", "on", "---", "- a", "a: b", "#x", "'q'", "1e3",
                                     "\n---\nrules:\n", "k" * 200]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)
SECTIONS = st.dictionaries(st.sampled_from(["rules", "actions", "yes", "node", "a b", "---"]),
                           st.one_of(SCALARS, st.dictionaries(SCALARS.map(str), VALUES,
                                                              max_size=6)),
                           max_size=5)


@settings(max_examples=200, deadline=None)
@given(first=SECTIONS, second=SECTIONS)
def test_the_text_of_any_mapping_reads_back_as_it(first, second):
    """Fresh, then through the layout of the first file: the file always reads as the mapping."""
    text, _ = persist.render(first, None)
    assert (yaml.safe_load(text) or {}) == first
    layout = Layout.parse(text)
    mixed = {**second, **{k: v for k, v in first.items() if k not in second}}
    text, _ = persist.render(mixed, layout)
    assert (yaml.safe_load(text) or {}) == mixed


@pytest.mark.parametrize("mapping", [
    {"rules": {"None": {"\n": "yes", "": None}}, "actions": None},  # a key ending in newlines
    {"rules": {"r": {"sql": "x\n\n"}}, "actions": {"k": "v\n\n\n"}},  # values, each section
])
def test_text_that_keeps_trailing_newlines_does_not_end_the_file_early(mapping):
    # YAML writers end a document with `...` after such a block scalar (`|+`); spliced into the
    # file, the marker ended it there and the next section was a parse error.
    layout = Layout.parse(persist.render({"rules": None, "actions": None}, None)[0])
    for text, _ in (persist.render(mapping, layout), persist.render(mapping, None)):
        assert "\n...\n" not in text
        assert yaml.safe_load(text) == mapping


def test_an_unchanged_entry_is_not_rendered_again(monkeypatch):
    rules = {f"r{i}": {"sql": f'SELECT * FROM "t/{i}"'} for i in range(100)}
    layout = Layout.parse(persist.render({"rules": rules}, None)[0])
    edited: list[str | None] = []
    real = Layout._edit

    def counting(self, key, entry, *args):
        edited.append(entry)
        return real(self, key, entry, *args)

    monkeypatch.setattr(Layout, "_edit", counting)
    text, _ = persist.render({"rules": {**rules, "new": {"sql": "x"}}}, layout)
    assert edited == ["new"]
    assert yaml.safe_load(text)["rules"]["new"] == {"sql": "x"}


async def test_a_burst_is_written_in_few_writes_ending_with_the_last(tmp_path, monkeypatch):
    path = tmp_path / "c.yaml"
    path.write_text("rules: {}\n")
    path.chmod(0o640)
    writes: list[int] = []
    real = persist.write_text

    def counting(p, text, data):
        writes.append(len(data["rules"]))
        return real(p, text, data)

    monkeypatch.setattr(persist, "write_text", counting)
    writer = ConfigWriter(path, interval=0.2)
    rules: dict[str, dict[str, str]] = {}
    for i in range(50):
        rules = {**rules, f"r{i}": {"sql": "x"}}
        writer.write_soon({"rules": rules})
        await asyncio.sleep(0.005)
    await writer.flush()
    assert writer.idle
    assert 1 <= len(writes) <= 5, writes
    assert writes[-1] == 50
    assert len(yaml.safe_load(path.read_text())["rules"]) == 50
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


async def test_the_write_happens_off_the_event_loop(tmp_path):
    path = tmp_path / "c.yaml"
    writer = ConfigWriter(path, interval=0.01)
    big = {"rules": {f"r{i}": {"sql": f'SELECT * FROM "t/{i}"', "description": "d" * 200}
                     for i in range(20_000)}}
    loop = asyncio.get_running_loop()
    lags = []
    started = loop.time()
    writer.write_soon(big)
    while not writer.idle:
        before = loop.time()
        await asyncio.sleep(0.005)
        lags.append(loop.time() - before - 0.005)
    took = loop.time() - started
    await writer.flush()
    # A write on the loop would stall it for the whole write: one tick, as long as the write.
    # In a thread the loop keeps ticking; the ticks share the GIL with the writer, so a tick may
    # be late now and then on a busy machine, but the typical one is not.
    assert len(lags) > 3
    assert sorted(lags)[len(lags) // 2] < took / 4
    assert len(yaml.safe_load(path.read_text())["rules"]) == 20_000


async def test_an_edit_by_someone_else_is_never_overwritten(tmp_path):
    path = tmp_path / "c.yaml"
    write_config(path, {"rules": {}})
    writer = ConfigWriter(path, interval=0.01)
    path.write_text("rules: {hand: {sql: edited}}\n")
    assert writer.maybe_edited()
    assert await asyncio.to_thread(writer.edited)
    writer.write_soon({"rules": {"api": {"sql": "x"}}})
    await writer.flush()
    assert "hand" in path.read_text()
    assert writer.conflict is not None and "reload" in writer.conflict
    writer.loaded(None)  # a reload clears the conflict
    assert writer.conflict is None


def test_a_touch_is_not_an_edit(tmp_path):
    path = tmp_path / "c.yaml"
    write_config(path, {"rules": {}})
    writer = ConfigWriter(path)
    os.utime(path, ns=(1, 1))
    assert writer.maybe_edited()
    assert not writer.edited()
    assert not writer.maybe_edited()  # hashed once, not on every change


async def test_a_failed_write_is_kept_and_retried(tmp_path, full_disk):
    path = tmp_path / "c.yaml"
    full_disk.full = False
    write_config(path, {"rules": {}})
    full_disk.full = True
    writer = ConfigWriter(path, interval=0.01)
    writer.write_soon({"rules": {"r": {"sql": "x"}}})
    await asyncio.sleep(0.1)
    assert not writer.idle  # still pending, waiting for its retry
    with pytest.raises(OSError, match="No space"):
        await writer.flush()
    assert yaml.safe_load(path.read_text()) == {"rules": {}}  # the old file is intact
    full_disk.full = False
    await writer.flush()
    assert writer.idle
    assert yaml.safe_load(path.read_text()) == {"rules": {"r": {"sql": "x"}}}


async def test_a_flush_that_fails_leaves_the_retries_running(tmp_path, full_disk):
    # A flush stops the background task to write at once; when that write fails too, the
    # change must still be retried without anyone asking again.
    path = tmp_path / "c.yaml"
    full_disk.full = False
    write_config(path, {"rules": {}})
    full_disk.full = True
    writer = ConfigWriter(path, interval=0.01)
    writer.write_soon({"rules": {"r": {"sql": "x"}}})
    with pytest.raises(OSError, match="No space"):
        await writer.flush()
    assert writer.last_error == f"cannot write {path}: No space left on device"
    full_disk.full = False
    for _ in range(300):  # the back-off after two failures is 1-2 s
        if writer.idle:
            break
        await asyncio.sleep(0.01)
    assert writer.idle
    assert writer.last_error is None
    assert yaml.safe_load(path.read_text()) == {"rules": {"r": {"sql": "x"}}}

"""The config file as text pieces: unchanged text is kept byte for byte, a changed piece is
edited in place, and whatever the file's shape the result reads back as the mapping."""

from __future__ import annotations

import copy
import time
from pathlib import Path

import pytest
import yaml

from mqferry._config.layout import Layout
from mqferry._config.yamlfile import read_yaml

EXAMPLES = sorted(Path("examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_an_unchanged_example_is_written_byte_for_byte(path):
    text = path.read_text()
    layout = Layout.parse(text)
    assert layout is not None
    assert layout.render(read_yaml(path, env=False))[0] == text


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_change_of_an_example_reads_back_and_keeps_the_rest(path):
    text = path.read_text()
    data = read_yaml(path, env=False)
    layout = Layout.parse(text)
    assert layout is not None
    for section, entries in data.items():
        if not isinstance(entries, dict):
            continue
        for name in entries:
            new = copy.deepcopy(data)
            new[section][name] = {"changed": True} if not isinstance(
                entries[name], dict) else {**entries[name], "description": "changed"}
            out, _ = layout.render(new)
            assert yaml.safe_load(out) == new
            # Every comment of the file is still there.
            comments = [line.strip() for line in text.splitlines()
                        if line.strip().startswith("#")]
            assert [c for c in comments if c not in out] == []


@pytest.mark.parametrize("text", ["{mqtt: {server: 'h:1'}, rules: {}}\n", "1: a\nrules: {}\n",
                                  "- a\n", "a: [unclosed\n"])
def test_a_shape_it_cannot_keep_is_refused(text):
    assert Layout.parse(text) is None


@pytest.mark.parametrize("text", [
    "rules:\n    r1:\n        sql: x\n        actions:\n        - a\n",  # 4 spaces, indentless
    "rules:\n  r1: {sql: x}\n  r2: {sql: y}\n",  # flow entries
    "# only a comment\n",
    "",
    "rules:\n  r1:\n    sql: x\n# a comment at the end\n",
    "rules: {}\nmqtt:\n  server: 'h:1'",  # no newline at the end
])
def test_any_shape_reads_back_as_the_mapping(text):
    layout = Layout.parse(text)
    data = yaml.safe_load(text) or {}
    data = {str(k): v for k, v in data.items()}
    new = {**data, "rules": {**(data.get("rules") or {}), "r1": {"sql": "SELECT\n  *\nFROM t\n"},
                             "r9": {"sql": "z", "actions": ["a", "b"]}}}
    assert layout is not None
    out, again = layout.render(new)
    assert yaml.safe_load(out) == new
    # and the layout of what was written is good for the next write
    out2, _ = again.render({**new, "extra": {"k": 1}})
    assert yaml.safe_load(out2) == {**new, "extra": {"k": 1}}


def test_a_change_to_one_of_10000_rules_costs_one_rule():
    rules = "".join(f'  r{i}:\n    # rule {i}\n    sql: |\n      SELECT payload.v AS v\n'
                    f'      FROM "pre/{i}/#"\n    actions:\n      - fake:a1\n'
                    for i in range(10_000))
    text = "rules:\n" + rules
    started = time.perf_counter()
    layout = Layout.parse(text)
    parsed = time.perf_counter() - started
    assert layout is not None
    data = yaml.load(text, Loader=yaml.CSafeLoader)
    new = {"rules": {**data["rules"], "r5000": {**data["rules"]["r5000"], "enable": False}}}
    started = time.perf_counter()
    out, _ = layout.render(new)
    rendered = time.perf_counter() - started
    print(f"10,000 rules: cut in {parsed * 1000:.0f} ms, one change rendered in "
          f"{rendered * 1000:.0f} ms")
    assert out == text.replace("      - fake:a1\n  r5001:", "      - fake:a1\n    enable: false\n"
                                                             "  r5001:")
    assert rendered < 0.5

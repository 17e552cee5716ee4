"""Generated and random rule SQL: refused with a clear config error, or run without stalling.

Statements come from a small grammar of valid shapes calling functions of the catalogue with
columns and literals; random text comes besides. A statement is either refused by the config
loader with a :class:`~mqferry._errors.ConfigError` naming the rule's ``sql`` field, or it runs in
the whole app on twins, where hostile payloads must not stall the stream.
"""

from __future__ import annotations

import asyncio
import functools
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqferry._errors import ConfigError
from tests.fuzz import strategies as s
from tests.fuzz.test_fuzz_mqtt_to_kafka import check_stream
from tests.fuzz.twins import Harness, base_config, compile_config, plugins

pytestmark = pytest.mark.fuzz

#: Functions left out of generated statements: getenv reads the process environment, so its
#: output would depend on the machine.
SKIPPED = {"getenv"}


@functools.cache
def catalogue() -> list[tuple[str, int, int | None]]:
    """``(name, min_args, max_args)`` of every function the app's table holds."""
    table = plugins().function_table()
    specs = [table.get(name) for name in table if name not in SKIPPED]
    return sorted((spec.name, spec.min_args, spec.max_args) for spec in specs if spec)


def rules_with(sql: str) -> dict[str, object]:
    return {"fuzz": {"sql": sql, "actions": ["kafka_producer:whole", "republish:echo"]},
            # The stream's own rule: the good message must still come through.
            "whole": {"sql": 'SELECT * FROM "#"', "actions": ["kafka_producer:whole"]},
            "echo": {"sql": 'SELECT * FROM "#"', "actions": ["republish:echo"]}}


def compiles(sql: str) -> bool:
    """Whether the statement is accepted; a refusal must be a ConfigError about its sql."""
    try:
        compile_config(base_config(rules_with(sql)))
    except ConfigError as exc:
        assert any(path.startswith("rules.fuzz") for path, _ in exc.problems), exc.problems
        return False
    return True


def run_rules(sql: str, payloads: list[bytes]) -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            h = Harness(compile_config(base_config(rules_with(sql))), Path(tmp))
            await h.start()
            try:
                await check_stream(h, [(f"t/{i}", p, 1, None) for i, p in enumerate(payloads)])
            finally:
                await h.stop()
    asyncio.run(main())


def test_the_grammar_reaches_most_of_the_catalogue():
    # A guard on the generator: a table change that empties it would make the property vacuous.
    assert len(catalogue()) > 100


@given(data=st.data())
@s.fuzz_settings(examples=50)
def test_generated_statements_never_stall_the_stream(data):
    sql = data.draw(s.statements(catalogue()), label="sql")
    if not compiles(sql):
        return
    payloads = data.draw(st.lists(s.payloads, min_size=1, max_size=3), label="payloads")
    run_rules(sql, payloads)


@given(text=st.text(max_size=80) | st.text(string.printable, max_size=80)
       | st.sampled_from(["SELECT", "SELECT * FROM", 'SELECT * FROM "', "FOREACH FROM \"t\"",
                          "SELECT ((((((((((1)))))))))) FROM \"t\"", "\x00", "'", '"' * 3]))
@s.fuzz_settings(examples=50)
def test_random_text_is_refused_with_a_config_error_or_runs(text):
    for sql in (text, f'SELECT {text} FROM "t/#"', f'SELECT * FROM "t/#" WHERE {text}'):
        if compiles(sql):
            run_rules(sql, [b'{"a": 1}'])


@pytest.mark.parametrize("depth", [300, 1000, 5000])
def test_deeply_nested_sql_is_refused_or_runs(depth):
    for sql in (f"SELECT {'(' * depth}1{')' * depth} as a FROM \"t\"",
                f"SELECT {'[' * depth}1{']' * depth} as a FROM \"t\"",
                f"SELECT {'not ' * depth}true as a FROM \"t\"",
                f"SELECT {'-' * depth}1 as a FROM \"t\"",
                "SELECT " + "+".join(["1"] * depth) + ' as a FROM "t"'):
        if compiles(sql):
            run_rules(sql, [b"{}"])

"""Parsing: syntax errors point at the place; compile errors; the parser only raises RuleError."""

from __future__ import annotations

import contextlib

import lark
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqferry._rules import RuleCompileError, RuleError, RuleSyntaxError, compile_sql


def test_misspelt_keyword_points_at_it_with_a_caret() -> None:
    sql = 'SELECT payload.temp as t FORM "t/#"'
    with pytest.raises(RuleSyntaxError) as info:
        compile_sql(sql)
    err = info.value
    assert (err.line, err.column) == (1, 26)
    assert str(err) == (
        "line 1, col 26: unexpected 'FORM', expected FROM\n" + sql + "\n" + " " * 25 + "^"
    )


@pytest.mark.parametrize(
    ("sql", "line", "column", "fragment"),
    [
        ('SELECT FROM "t"', 1, 8, "unexpected 'FROM'"),
        ('SELECT a FROM "t" WHERE', 1, 24, "end of input"),
        ('SELECT a,\n  b +\nFROM "t"', 3, 1, "unexpected 'FROM'"),
        ('SELECT a FROM "t" WHERE a = = 1', 1, 29, "unexpected '='"),
        ('SELECT a FROM "t" WHERE a # 1', 1, 27, "unexpected character '#'"),
        ("SELECT a", 1, 9, "expected"),
        ('SELEC a FROM "t"', 1, 1, "expected SELECT"),
    ],
)
def test_syntax_errors_have_positions(sql: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        compile_sql(sql)
    assert (info.value.line, info.value.column) == (line, column)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ('SELECT no_such_fn(1) FROM "t"', "unknown function no_such_fn()"),
        ('SELECT upper() FROM "t"', "upper() takes 1 argument, got 0"),
        ('SELECT upper(1, 2) FROM "t"', "upper() takes 1 argument, got 2"),
        ('SELECT substr() FROM "t"', "takes 2 to 3 arguments"),
        ('SELECT sprintf() FROM "t"', "takes at least 1 argument"),
        ('SELECT clientid FROM "t" WHERE nope(clientid)', "unknown function nope()"),
    ],
)
def test_unknown_function_and_arity_fail_at_compile_time(sql: str, message: str) -> None:
    with pytest.raises(RuleCompileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        compile_sql(sql)


def test_keywords_are_case_insensitive_and_identifiers_may_contain_them() -> None:
    rule = compile_sql('sElEcT selector, fromage AS asx FrOm "t/#" wHeRe notice = 1')
    assert rule.sources == ("t/#",)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_parser_raises_only_rule_errors_on_any_text(text: str) -> None:
    with contextlib.suppress(RuleError):
        compile_sql(text)


_PIECES = st.sampled_from(
    [
        "SELECT",
        "FOREACH",
        "DO",
        "INCASE",
        "FROM",
        "WHERE",
        "AS",
        "AND",
        "OR",
        "NOT",
        "IN",
        "CASE",
        "WHEN",
        "THEN",
        "ELSE",
        "END",
        "payload",
        ".",
        "x",
        "[",
        "]",
        "1",
        "-1",
        "..",
        "(",
        ")",
        ",",
        "'s'",
        '"t/#"',
        "+",
        "-",
        "*",
        "/",
        "div",
        "mod",
        "=",
        "=~",
        "<>",
        ">",
        "upper",
        "nth",
        "*",
        "true",
        "1.5",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=25))
def test_parser_raises_only_rule_errors_on_token_soup(pieces: list[str]) -> None:
    with contextlib.suppress(RuleError):
        compile_sql(" ".join(pieces))


# The parser saved beside the grammar (scripts/compile.py) and loaded at start-up.

_SAVED_SQL = (
    'SELECT payload.x as x, topic FROM "a/#", "b/+" WHERE x > 1 AND NOT (y IN (1, 2))',
    "FOREACH payload.items as i DO i.v as v INCASE i.v > 0 FROM \"t\"",
    'SELECT CASE WHEN a = 1 THEN \'one\' ELSE \'other\' END as c FROM "t" WHERE a DIV 2 MOD 3 < 1',
)


def test_a_saved_parser_parses_as_the_one_built_from_the_grammar(tmp_path) -> None:
    from mqferry._rules import parser as p
    from mqferry._rules import saved_parser

    grammar = p._grammar()
    built = p._build(grammar)
    saved_parser.save(built, tmp_path / "saved", grammar, p._OPTIONS)
    loaded = saved_parser.load(tmp_path / "saved", grammar, p._OPTIONS)
    assert loaded is not None
    for sql in _SAVED_SQL:
        assert loaded.parse(sql) == built.parse(sql)
        # positions too: field texts come from them
        assert p._ToNodes(sql).transform(loaded.parse(sql)) == p._ToNodes(sql).transform(
            built.parse(sql))
    with pytest.raises(lark.UnexpectedToken) as from_saved:
        loaded.parse('SELECT a FORM "t"')
    with pytest.raises(lark.UnexpectedToken) as from_grammar:
        built.parse('SELECT a FORM "t"')
    assert (from_saved.value.line, from_saved.value.column, from_saved.value.expected) == (
        from_grammar.value.line, from_grammar.value.column, from_grammar.value.expected)
    assert list(tmp_path.iterdir()) == [tmp_path / "saved"]  # no temporary file left


@pytest.mark.parametrize("content", [b"", b"garbage\n", b"0" * 64 + b"\nnot a pickle"])
def test_a_damaged_saved_parser_is_not_loaded_nor_written(tmp_path, content: bytes) -> None:
    from mqferry._rules import parser as p
    from mqferry._rules import saved_parser

    saved = tmp_path / "saved"
    saved.write_bytes(content)
    assert saved_parser.load(saved, p._grammar(), p._OPTIONS) is None
    assert saved.read_bytes() == content  # nothing is written at run time


def test_a_file_saved_with_the_right_key_but_broken_after_it_is_not_loaded(tmp_path) -> None:
    from mqferry._rules import parser as p
    from mqferry._rules import saved_parser

    saved = tmp_path / "saved"
    saved.write_bytes(saved_parser.MAGIC + saved_parser.key(p._grammar(), p._OPTIONS)
                      + b"\nnot a pickle")
    assert saved_parser.load(saved, p._grammar(), p._OPTIONS) is None


def test_a_parser_saved_from_another_grammar_or_options_is_not_loaded(tmp_path) -> None:
    from mqferry._rules import parser as p
    from mqferry._rules import saved_parser

    grammar = p._grammar()
    saved_parser.save(p._build(grammar), tmp_path / "saved", grammar, p._OPTIONS)
    changed = grammar + "\n// a change\n"
    assert saved_parser.load(tmp_path / "saved", changed, p._OPTIONS) is None
    assert saved_parser.load(tmp_path / "saved", grammar,
                             {**p._OPTIONS, "maybe_placeholders": False}) is None
    # the path it is read from is not part of the key (a moved or linked checkout loads it)
    (tmp_path / "saved").rename(tmp_path / "elsewhere")
    assert saved_parser.load(tmp_path / "elsewhere", grammar, p._OPTIONS) is not None


def test_without_a_saved_parser_it_is_built_and_nothing_is_written(tmp_path, monkeypatch) -> None:
    from mqferry._rules import parser as p

    monkeypatch.setattr(p, "cache_path", lambda: tmp_path / "absent")
    parser = p._parser.__wrapped__()
    assert parser.parse(_SAVED_SQL[0]) is not None
    assert not (tmp_path / "absent").exists()


def test_the_saved_parser_is_the_one_in_use_when_present(tmp_path, monkeypatch) -> None:
    from mqferry._rules import parser as p
    from mqferry._rules import saved_parser

    monkeypatch.setattr(p, "cache_path", lambda: tmp_path / "saved")
    assert p.save_parser() == tmp_path / "saved"
    before = (tmp_path / "saved").stat().st_mtime_ns
    loads = []
    real_load = saved_parser.load
    monkeypatch.setattr(saved_parser, "load", lambda *a: loads.append(a) or real_load(*a))
    parser = p._parser.__wrapped__()
    assert loads and parser.parse(_SAVED_SQL[0]) == p._build(p._grammar()).parse(_SAVED_SQL[0])
    assert (tmp_path / "saved").stat().st_mtime_ns == before  # loaded, not written again


def test_save_parser_raises_when_it_cannot_write(tmp_path, monkeypatch) -> None:
    from mqferry._rules import parser as p

    monkeypatch.setattr(p, "cache_path", lambda: tmp_path / "missing-dir" / "saved")
    with pytest.raises(OSError):
        p.save_parser()

"""String, regex and formatting functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mqferry._rules import RuleEvalError


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("lower('AbC')", "abc"),
        ("upper('abc')", "ABC"),
        ("trim('  a b  ')", "a b"),
        ("ltrim('  ab ')", "ab "),
        ("rtrim('  ab ')", "  ab"),
        ("rtrim('abxx', 'x')", "ab"),
        ("reverse('abc')", "cba"),
        ("strlen('héllo')", 5),
        ("substr('abcdef', 2)", "cdef"),
        ("substr('abcdef', 1, 2)", "bc"),
        ("substr('abc', 5)", ""),
        ("split('a/b/c', '/')", ["a", "b", "c"]),
        ("split('/a//b/', '/')", ["a", "b"]),
        ("split('a,b,c', ',', 'leading')", ["a", "b,c"]),
        ("split('a,b,c', ',', 'trailing')", ["a,b", "c"]),
        ("split(',a,,b', ',', 'notrim')", ["", "a", "", "b"]),
        ("tokens('a b,c', ' ,')", ["a", "b", "c"]),
        ("tokens('a,,b', ',')", ["a", "b"]),
        ("nth(2, tokens('c_1_x', '_'))", "1"),
        ("concat('a', 'b')", "ab"),
        ("concat('a', 1)", "a1"),
        ("concat(['a', 1, 2.5])", "a12.5"),
        ("replace('abab', 'a', 'x')", "xbxb"),
        ("replace('abab', 'a', 'x', 'leading')", "xbab"),
        ("replace('abab', 'a', 'x', 'trailing')", "abxb"),
        ("find('abcbc', 'b')", "bcbc"),
        ("find('abcbc', 'b', 'trailing')", "bc"),
        ("find('abc', 'x')", ""),
        ("ascii('a')", 97),
        ("rm_prefix('foo/bar', 'foo/')", "bar"),
        ("rm_prefix('foo/bar', 'x')", "foo/bar"),
        ("pad('ab', 5)", "ab   "),
        ("pad('ab', 5, 'leading')", "   ab"),
        ("pad('ab', 5, 'both')", " ab  "),
        ("pad('ab', 5, 'leading', '0')", "000ab"),
        ("pad('abcdef', 3)", "abcdef"),
        ("join_to_string(['a', 1, true])", "a, 1, true"),
        ("join_to_string('-', ['a', 'b'])", "a-b"),
        ("join_to_sql_values_string(['a', 1, [1, 2]])", "'a', 1, '[1,2]'"),
        ("sprintf('~s-~p', 'a', 1)", "a-1"),
        ("sprintf('~p', 'ab')", '<<"ab">>'),
        ("sprintf('~5s|', 'ab')", "   ab|"),
        ("sprintf('~-5s|', 'ab')", "ab   |"),
        ("sprintf('~.2f', 3.14159)", "3.14"),
        ("sprintf('~b', 10)", "10"),
        ("sprintf('~.16B', 255)", "FF"),
        ("sprintf('~~ok~n')", "~ok\n"),
        ("unescape('a\\nb')", "a\nb"),
        ("unescape('tab\\there')", "tab\there"),
        ("unescape('\\x41\\x42')", "AB"),
        ("regex_match('abc123', '[0-9]+')", True),
        ("regex_match('abc', '^[0-9]+$')", False),
        ("regex_replace('aaa', 'a', 'b')", "bbb"),
        ("regex_replace('ab12', '([a-z]+)', '<&>')", "<ab>12"),
        ("regex_replace('ab12', '([a-z]+)([0-9]+)', '\\2\\1')", "12ab"),
        ("regex_extract('Number: 12345', '(\\d+)')", ["12345"]),
        ("regex_extract('Date: 2021-05-20', '(\\d{4})-(\\d{2})-(\\d{2})')", ["2021", "05", "20"]),
        ("regex_extract('none', '(\\d+)')", []),
    ],
)
def test_strings(expr: Callable[..., Any], sql: str, expected: Any) -> None:
    assert expr(sql) == expected


@pytest.mark.parametrize(
    "sql",
    [
        "upper(payload.missing)",
        "substr('abc', -1)",
        "split('a', ',', 'bogus')",
        "regex_match('a', concat('(', ''))",  # a literal '(' refuses the rule instead
        "sprintf('~s ~s', 'a')",
        "unescape('\\q')",
        "ascii('')",
    ],
)
def test_string_errors(expr: Callable[..., Any], sql: str) -> None:
    with pytest.raises(RuleEvalError):
        expr(sql)

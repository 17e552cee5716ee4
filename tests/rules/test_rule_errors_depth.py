"""Statements nested past the interpreter's recursion limit are refused as syntax errors."""

import pytest

from mqferry._rules import compile_sql
from mqferry._rules.errors import RuleSyntaxError


@pytest.mark.parametrize("sql", [
    "SELECT " + "[" * 5000 + "1" + "]" * 5000 + ' as a FROM "t"',
    "SELECT " + "not " * 5000 + 'true as a FROM "t"',
    "SELECT " + "+".join(["1"] * 5000) + ' as a FROM "t"',
])
def test_a_statement_nested_too_deeply_is_a_syntax_error(sql):
    with pytest.raises(RuleSyntaxError, match="nested too deeply"):
        compile_sql(sql)

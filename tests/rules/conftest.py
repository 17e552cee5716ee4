"""Fixtures for the rule engine tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rules_helpers import make_event

from mqferry.rules import compile_sql


@pytest.fixture
def event() -> dict[str, Any]:
    return make_event()


@pytest.fixture
def expr() -> Callable[..., Any]:
    """Evaluate one SQL expression: ``expr("upper('a')")`` is the value SELECT gives it."""

    def run(text: str, **overrides: Any) -> Any:
        rule = compile_sql(f'SELECT {text} AS r FROM "#"')  # noqa: S608 - rule SQL, not a database
        out = rule.apply(make_event(**overrides))
        assert isinstance(out, dict)
        return out.get("r")

    return run

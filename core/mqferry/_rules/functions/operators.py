"""Operators callable as functions: ``div(a, b)``, ``mod(a, b)``, ``eq(a, b)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mqferry._rules import values

__all__ = ["FUNCTIONS"]


def eq(a: Any, b: Any) -> bool:
    """Erlang ``==``: ``eq(1, 1.0)`` is true."""
    return values.loose_eq(a, b)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "div": values.arith_intdiv,
    "mod": values.arith_mod,
    "eq": eq,
}

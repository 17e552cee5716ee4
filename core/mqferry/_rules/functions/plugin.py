"""Registers the built-in rule SQL functions, exactly as a third-party plugin would."""

from __future__ import annotations

from typing import Any

from mqferry import hookimpl
from mqferry._rules.functions import catalogue


@hookimpl
def mqferry_register_functions(register: Any) -> None:
    """Add the EMQX function catalogue."""
    for name, func, low, high in catalogue():
        register.add(name, func, min_args=low, max_args=high)

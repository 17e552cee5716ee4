"""The built-in rule SQL functions, grouped by category, and the function table.

Each category module exposes ``FUNCTIONS`` (SQL name -> callable) and, where the signature does
not tell the accepted arity, ``ARITY`` (SQL name -> (min, max)).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

from mqferry._rules.functions import (
    arrays,
    bits,
    checks,
    compression,
    conv,
    encoding,
    jqfuncs,
    jsonfuncs,
    maps,
    math_funcs,
    message,
    misc,
    operators,
    regex,
    storage,
    strfmt,
    strings,
    timefuncs,
)
from mqferry._rules.functions.table import (
    PER_MESSAGE,
    FunctionSpec,
    FunctionTable,
    blocking,
    compile_check,
    needs_event,
)

__all__ = ["PER_MESSAGE", "FunctionSpec", "FunctionTable", "blocking", "builtin_function_table",
           "catalogue", "compile_check", "needs_event"]

_MODULES: tuple[ModuleType, ...] = (
    arrays, bits, checks, compression, conv, encoding, jqfuncs, jsonfuncs, maps, math_funcs,
    message, misc, operators, regex, storage, strfmt, strings, timefuncs,
)

BUILTIN_PLUGIN = "functions"

#: Built-ins that may run for long: a jq program runs up to its timeout (seconds), in another
#: process the caller waits on. Rules calling them are evaluated off the event loop. (The regular
#: expression functions decide per call, by their compile check: see ``regex``.)
_BLOCKING = frozenset({"jq"})


def catalogue() -> Iterator[tuple[str, Callable[..., Any], int | None, int | None]]:
    """Every built-in function as ``(name, callable, min_args, max_args)``.

    ``None`` arities are taken from the callable's signature.
    """
    for module in _MODULES:
        arity: dict[str, tuple[int, int | None]] = getattr(module, "ARITY", {})
        for name, func in module.FUNCTIONS.items():
            low, high = arity.get(name, (None, None))
            yield name, blocking(func) if name in _BLOCKING else func, low, high


def builtin_function_table() -> FunctionTable:
    """A table holding the built-in catalogue only (no plugin manager needed)."""
    table = FunctionTable()
    for name, func, low, high in catalogue():
        table.add(name, func, min_args=low, max_args=high, plugin=BUILTIN_PLUGIN)
    return table

"""The table of functions rule SQL can call: the built-ins plus what plugins register."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from mqferry._rules.errors import DuplicateFunctionError, RuleCompileError

__all__ = ["PER_MESSAGE", "CompileCheck", "FunctionSpec", "FunctionTable", "blocking",
           "compile_check", "needs_event"]

_EVENT_FLAG = "__mqferry_needs_event__"
_BLOCKING_FLAG = "__mqferry_blocking__"
_CHECK_FLAG = "__mqferry_compile_check__"

_F = TypeVar("_F", bound=Callable[..., Any])


class _PerMessage:
    def __repr__(self) -> str:
        return "PER_MESSAGE"


#: What a :func:`compile_check` sees for an argument that is not a literal.
PER_MESSAGE: Final[Any] = _PerMessage()

#: ``check(args) -> may_block``: see :func:`compile_check`.
CompileCheck = Callable[[Sequence[Any]], bool]


def needs_event(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a rule function that reads the event: it is called as ``func(event, *args)``.

    EMQX's message accessors (``clientid()``, ``topic(N)``, ``payload(path)``) work this way.
    """
    setattr(func, _EVENT_FLAG, True)
    return func


def blocking(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a rule function that may take long (it waits on another process, a program runs
    up to its timeout): rules that call it are evaluated in a worker thread, off the event loop.
    """
    setattr(func, _BLOCKING_FLAG, True)
    return func


def compile_check(check: CompileCheck) -> Callable[[_F], _F]:
    """Mark a rule function with a check that runs once per call in a rule, when the rule is
    compiled.

    ``check(args)`` gets the call's arguments: the value of each literal, :data:`PER_MESSAGE` for
    the others. It raises (any exception, with a message naming the argument) to refuse the
    rule, and returns whether this call may take long, as a :func:`blocking` function: a rule
    with such a call is evaluated off the event loop.
    """
    def mark(func: _F) -> _F:
        setattr(func, _CHECK_FLAG, check)
        return func
    return mark


@dataclass(frozen=True)
class FunctionSpec:
    """A registered rule function.

    Attributes:
        name: the SQL name.
        func: the callable; it receives the evaluated arguments (undefined is ``None``).
        min_args: fewest arguments accepted.
        max_args: most arguments accepted, ``None`` for any number.
        plugin: the plugin that registered it.
        needs_event: the callable also gets the event as its first argument.
        blocking: a call may take long (see :func:`blocking`).
        check: runs when a rule calling it is compiled (see :func:`compile_check`).
    """

    name: str
    func: Callable[..., Any]
    min_args: int
    max_args: int | None
    plugin: str
    needs_event: bool = False
    blocking: bool = False
    check: CompileCheck | None = None

    def check_arity(self, count: int) -> None:
        """Raise ``RuleCompileError`` unless ``count`` arguments are accepted."""
        if count < self.min_args or (self.max_args is not None and count > self.max_args):
            if self.max_args is None:
                wanted = f"at least {self.min_args}"
            elif self.min_args == self.max_args:
                wanted = str(self.min_args)
            else:
                wanted = f"{self.min_args} to {self.max_args}"
            raise RuleCompileError(
                f"function {self.name}() takes {wanted} argument"
                f"{'' if wanted == '1' else 's'}, got {count}"
            )


def _arity(func: Callable[..., Any], skip: int) -> tuple[int, int | None]:
    sig = inspect.signature(func)
    low, high = 0, 0
    unbounded = False
    for param in list(sig.parameters.values())[skip:]:
        if param.kind is param.VAR_POSITIONAL:
            unbounded = True
        elif param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD):
            high += 1
            if param.default is param.empty:
                low += 1
    return low, None if unbounded else high


class FunctionTable:
    """Name -> :class:`FunctionSpec`. Names are case-sensitive, like EMQX's.

    Build it with :func:`~mqferry._rules.builtin_function_table` for the built-ins only, or let the
    plugin manager fill an empty table through ``mqferry_register_functions``.
    """

    def __init__(self) -> None:
        self._specs: dict[str, FunctionSpec] = {}

    def add(
        self,
        name: str,
        func: Callable[..., Any],
        *,
        min_args: int | None = None,
        max_args: int | None = None,
        plugin: str = "?",
    ) -> None:
        """Register ``func`` under ``name``.

        Args:
            name: the SQL name.
            func: the callable.
            min_args: fewest arguments; taken from the signature when None.
            max_args: most arguments; taken from the signature when None (``*args`` means any).
            plugin: the registering plugin, named in duplicate errors.

        Raises:
            DuplicateFunctionError: ``name`` is already registered.
        """
        old = self._specs.get(name)
        if old is not None:
            raise DuplicateFunctionError(name, old.plugin, plugin)
        event = bool(getattr(func, _EVENT_FLAG, False))
        if min_args is None or max_args is None:
            low, high = _arity(func, 1 if event else 0)
            min_args = low if min_args is None else min_args
            if max_args is None:
                max_args = high
        self._specs[name] = FunctionSpec(name, func, min_args, max_args, plugin, event,
                                         bool(getattr(func, _BLOCKING_FLAG, False)),
                                         getattr(func, _CHECK_FLAG, None))

    def get(self, name: str) -> FunctionSpec | None:
        """The spec registered under ``name``, or None."""
        return self._specs.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._specs))

    def __len__(self) -> int:
        return len(self._specs)

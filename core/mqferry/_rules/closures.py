"""The closures that a rule's paths and function calls compile to (see
:mod:`mqferry._rules.compiler`): one key on a column, a walk of several steps into a value, and
a call of a rule function with its argument errors named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mqferry._rules import values as v
from mqferry._rules.errors import RuleEvalError
from mqferry._rules.event import Event
from mqferry._rules.functions.table import FunctionSpec
from mqferry._rules.paths import get_step

__all__ = ["Expr", "get1", "make_call", "read_payload", "walker"]

#: A compiled expression: ``(event, scope) -> value``.
Expr = Callable[[Event, dict[str, Any]], Any]


def read_payload(ev: Event, sc: dict[str, Any]) -> Any:
    """The event's payload decoded as JSON."""
    return ev.decoded_payload()


def get1(key: str, is_payload: bool, name: str) -> Expr:
    """Read ``key`` of the column ``name`` (of the decoded payload when ``is_payload``)."""
    # One key on a column is by far the most common path (`payload.temp`): no loop.
    if is_payload:
        def get_payload_key(ev: Event, sc: dict[str, Any]) -> Any:
            data = ev.decoded_payload()
            if type(data) is dict:
                return data.get(key)
            return get_step(data, key)
        return get_payload_key

    def get_key(ev: Event, sc: dict[str, Any]) -> Any:
        data = ev.get(name)
        if type(data) is dict:
            return data.get(key)
        return get_step(data, key)
    return get_key


def walker(steps: list[Any]) -> Callable[[Any, Event, dict[str, Any]], Any]:
    """Walk ``steps`` (keys, indexes, or expressions giving them) into a value."""
    if len(steps) == 1 and type(steps[0]) is str:
        # One key into an object: the common ``payload.x`` of a scoped payload, no loop.
        key = steps[0]

        def walk_key(data: Any, ev: Event, sc: dict[str, Any]) -> Any:
            return data.get(key) if type(data) is dict else get_step(data, key)
        return walk_key
    if all(not callable(s) for s in steps):
        const_steps = tuple(steps)

        def walk_const(data: Any, ev: Event, sc: dict[str, Any]) -> Any:
            for step in const_steps:
                data = get_step(data, step)
                if data is None:
                    return None
            return data
        return walk_const
    mixed = tuple(steps)

    def walk_mixed(data: Any, ev: Event, sc: dict[str, Any]) -> Any:
        for step in mixed:
            data = get_step(data, step(ev, sc) if callable(step) else step)
            if data is None:
                return None
        return data
    return walk_mixed


def make_call(spec: FunctionSpec, args: list[Expr]) -> Expr:
    """Call ``spec``'s function on ``args``; its errors name the call and its arguments."""
    func, name, with_event = spec.func, spec.name, spec.needs_event

    def fail(exc: Exception, values: list[Any]) -> RuleEvalError:
        shown = ", ".join(v.to_repr(a) for a in values)
        return RuleEvalError("bad_sql_function_argument", f"{name}({shown}): {exc}")

    if with_event:
        def call_ev(ev: Event, sc: dict[str, Any]) -> Any:
            vals = [a(ev, sc) for a in args]
            try:
                return func(ev, *vals)
            except RuleEvalError:
                raise
            except Exception as exc:
                raise fail(exc, vals) from exc
        return call_ev
    if len(args) == 1:
        (a0,) = args

        def call1(ev: Event, sc: dict[str, Any]) -> Any:
            x = a0(ev, sc)
            try:
                return func(x)
            except RuleEvalError:
                raise
            except Exception as exc:
                raise fail(exc, [x]) from exc
        return call1

    def call(ev: Event, sc: dict[str, Any]) -> Any:
        vals = [a(ev, sc) for a in args]
        try:
            return func(*vals)
        except RuleEvalError:
            raise
        except Exception as exc:
            raise fail(exc, vals) from exc
    return call

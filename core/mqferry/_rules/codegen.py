"""Generate one specialised Python function per SELECT statement, for speed.

The closures of :mod:`mqferry._rules.compiler` cost a Python call per node of the expression tree;
for the short rules that dominate real use that overhead is most of an evaluation. This module
writes the statement out as the source of one function (fields unrolled, common nodes inline,
numbers compared without the generic path) and compiles it with :func:`compile`.

Safety: the generated text contains only identifiers this module makes up (``v3``, ``_k0``) and
Python keywords. Every name, key and constant from the rule (user text) is passed to the
function through its namespace, never spliced into the source. Nodes this module does not inline
call the closure the :class:`~mqferry._rules.compiler.Compiler` builds for them, so the semantics
stay in one place; the inline forms below repeat only the simplest of them.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Collection, Iterator
from typing import Any

from mqferry._rules import nodes as n
from mqferry._rules import values as v
from mqferry._rules.compiler import ALL, Compiler
from mqferry._rules.errors import RuleEvalError
from mqferry._rules.event import UNSET, Event
from mqferry._rules.paths import get_step

__all__ = ["generate_select", "var_names"]

#: A generated SELECT: the output, or None when WHERE is not true.
Select = Callable[[Event], dict[str, Any] | None]

_MISSING: Any = object()
_ORDERED = (">", "<", ">=", "<=")


def var_names(node: Any) -> Iterator[str]:
    """Every column name an expression reads (the roots of its paths included)."""
    if isinstance(node, n.Var):
        yield node.name
    elif isinstance(node, tuple):
        for item in node:
            yield from var_names(item)
    elif dataclasses.is_dataclass(node):
        for f in dataclasses.fields(node):
            yield from var_names(getattr(node, f.name))


def _call_error(name: str, exc: Exception, values: list[Any]) -> RuleEvalError:
    shown = ", ".join(v.to_repr(a) for a in values)
    return RuleEvalError("bad_sql_function_argument", f"{name}({shown}): {exc}")


class _Writer:
    """Source lines plus the namespace of the function being generated."""

    def __init__(self, compiler: Compiler) -> None:
        self.compiler = compiler
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {
            "_MISSING": _MISSING, "_UNSET": UNSET, "_get_step": get_step,
            "_compare": v.compare, "_RuleEvalError": RuleEvalError, "_call_error": _call_error,
            "int": int, "float": float, "str": str, "type": type, "dict": dict,
        }
        self._ids = itertools.count()
        #: The variable holding the decoded payload once it was decoded unconditionally.
        self.payload: str | None = None

    def temp(self) -> str:
        return f"v{next(self._ids)}"

    def const(self, value: Any) -> str:
        name = f"_k{next(self._ids)}"
        self.ns[name] = value
        return name

    def emit(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)

    # ------------------------------------------------------------------ expressions
    def expr(  # noqa: PLR0911 - one return per inlined node type
        self, node: n.Node, bound: Collection[str], scope: str, ind: int
    ) -> str:
        """Emit statements computing ``node``; return the name holding its value."""
        if isinstance(node, n.Const) and not callable(node.value):
            return self.const(node.value)
        if isinstance(node, n.Var):
            return self._var(node.name, bound, scope, ind)
        if isinstance(node, n.GetKey) and not _is_bound(_root(node), bound):
            return self._path(node, bound, scope, ind)
        if isinstance(node, n.Compare):
            return self._compare(node, bound, scope, ind)
        if isinstance(node, n.And | n.Or):
            return self._logic(node, bound, scope, ind)
        if isinstance(node, n.Not):
            val = self.expr(node.operand, bound, scope, ind)
            out = self.temp()
            self.emit(ind, f"{out} = {val} is False")
            return out
        if isinstance(node, n.Call) and self.compiler.presence_call(node, bound) is None:
            return self._call(node, bound, scope, ind)
        # Anything else: the closure the compiler makes for it.
        fn = self.const(self.compiler.expr(node, bound))
        out = self.temp()
        self.emit(ind, f"{out} = {fn}(ev, {scope})")
        return out

    def _var(self, name: str, bound: Collection[str], scope: str, ind: int) -> str:
        key = self.const(name)
        out = self.temp()
        if _is_bound(name, bound):
            self.emit(ind, f"{out} = {scope}.get({key}, _MISSING)")
            self.emit(ind, f"if {out} is _MISSING:")
            self.emit(ind + 1, f"{out} = ev.get({key})")
        else:
            self.emit(ind, f"{out} = ev.get({key})")
        return out

    def _path(self, node: n.GetKey, bound: Collection[str], scope: str, ind: int) -> str:
        keys: list[str] = []
        cur: n.Node = node
        while isinstance(cur, n.GetKey):
            keys.append(cur.key)
            cur = cur.target
        keys.reverse()
        if isinstance(cur, n.Var) and cur.name == "payload" and self.payload is not None:
            data = self.payload
        elif isinstance(cur, n.Var) and cur.name == "payload":
            # Decoded once per event and cached on it (see Event.decoded_payload).
            data = self.temp()
            self.emit(ind, f"{data} = ev._decoded")
            self.emit(ind, f"if {data} is _UNSET:")
            self.emit(ind + 1, f"{data} = ev.decoded_payload()")
            if ind == 1:
                # Top level, so it always ran before anything emitted after it.
                self.payload = data
        else:
            data = self.expr(cur, bound, scope, ind)
        out = self.temp()
        for i, key in enumerate(keys):
            k = self.const(key)
            src = data if i == 0 else out
            step = f"{out} = {src}.get({k}) if type({src}) is dict else _get_step({src}, {k})"
            if i == 0:
                self.emit(ind, step)
            else:
                self.emit(ind, f"if {out} is not None:")
                self.emit(ind + 1, step)
        return out

    def _compare(self, node: n.Compare, bound: Collection[str], scope: str, ind: int) -> str:
        op = "!=" if node.op == "<>" else node.op
        a = self.expr(node.left, bound, scope, ind)
        b = self.expr(node.right, bound, scope, ind)
        out = self.temp()
        opk = self.const(op)
        if op in _ORDERED:
            # Numbers are by far the common case in WHERE: compare them without the generic path.
            rconst = isinstance(node.right, n.Const) and type(node.right.value) in (int, float)
            ta = self.temp()
            self.emit(ind, f"{ta} = type({a})")
            if rconst:
                self.emit(ind, f"if {ta} is int or {ta} is float:")
            else:
                tb = self.temp()
                self.emit(ind, f"{tb} = type({b})")
                self.emit(ind, f"if ({ta} is int or {ta} is float) and "
                               f"({tb} is int or {tb} is float):")
            self.emit(ind + 1, f"{out} = {a} {op} {b}")
        elif op in ("=", "!="):
            ta = self.temp()
            self.emit(ind, f"{ta} = type({a})")
            # Same exact type among these three: Erlang's == is Python's ==.
            self.emit(ind, f"if {ta} is type({b}) and ({ta} is str or {ta} is int "
                           f"or {ta} is float):")
            self.emit(ind + 1, f"{out} = {a} {'==' if op == '=' else '!='} {b}")
        else:
            self.emit(ind, f"{out} = _compare({opk}, {a}, {b})")
            return out
        self.emit(ind, "else:")
        self.emit(ind + 1, f"{out} = _compare({opk}, {a}, {b})")
        return out

    def _logic(self, node: n.And | n.Or, bound: Collection[str], scope: str, ind: int) -> str:
        out = self.temp()
        left = self.expr(node.left, bound, scope, ind)
        self.emit(ind, f"{out} = {left} is True")
        self.emit(ind, f"if {'' if isinstance(node, n.And) else 'not '}{out}:")
        right = self.expr(node.right, bound, scope, ind + 1)
        self.emit(ind + 1, f"{out} = {right} is True")
        return out

    def _call(self, node: n.Call, bound: Collection[str], scope: str, ind: int) -> str:
        # The compiler checks the name and arity and notes a blocking function.
        self.compiler.expr(node, bound)
        spec = self.compiler.functions.get(node.name)
        assert spec is not None  # the compiler refused an unknown name above
        args = [self.expr(a, bound, scope, ind) for a in node.args]
        fn, name = self.const(spec.func), self.const(spec.name)
        out = self.temp()
        call_args = ", ".join((["ev"] if spec.needs_event else []) + args)
        self.emit(ind, "try:")
        self.emit(ind + 1, f"{out} = {fn}({call_args})")
        self.emit(ind, "except _RuleEvalError:")
        self.emit(ind + 1, "raise")
        self.emit(ind, "except Exception as exc:")
        self.emit(ind + 1, f"raise _call_error({name}, exc, [{', '.join(args)}]) from exc")
        return out


def _store(w: _Writer, alias: tuple[n.AliasStep, ...], val: str,
           results: list[tuple[str, str]] | None, *, scoped: bool) -> None:
    """Emit storing a field's value ``val`` at its alias.

    ``results``: collects ``(key, value)`` for the output's dict literal (every alias is one
    name), else the value is stored into ``out``. ``scoped``: a later field reads it by name.
    """
    if len(alias) > 1:
        name = w.const(alias)
        w.emit(1, f"_put(out, sc, ev, {name}, ev, scoped=True, val={val})")
        return
    key = w.const(alias[0])
    if results is not None:
        results.append((key, val))
    else:
        w.emit(1, f"out[{key}] = {val}")
    if scoped:
        # Only a later field reads the scope, and only by name.
        w.emit(1, f"if {val} is None:")
        w.emit(2, f"_unset(sc, ev, {key})")
        w.emit(1, "else:")
        w.emit(2, f"sc[{key}] = {val}")


def _root(node: n.Node) -> str:
    cur = node
    while isinstance(cur, n.GetKey):
        cur = cur.target
    return cur.name if isinstance(cur, n.Var) else ""


def _is_bound(name: str, bound: Collection[str]) -> bool:
    return bound is ALL or name in bound


def generate_select(compiler: Compiler, stmt: n.Statement, where_bound: Collection[str], *,
                    put: Callable[..., None], unset: Callable[..., None],
                    columns: Callable[[Event], dict[str, Any]]) -> Select:
    """The SELECT statement ``stmt`` as one function ``(event) -> output or None``.

    Args:
        compiler: compiles the nodes that are not inlined.
        stmt: a SELECT statement (not FOREACH).
        where_bound: the names WHERE reads from the output before the event.
        put: stores a value at an alias path (``rule._put``).
        unset: restores a column in the scope after an undefined alias (``rule._unset``).
        columns: the columns of ``SELECT *`` (``rule.event_columns``).
    """
    w = _Writer(compiler)
    w.ns.update({"_put": put, "_unset": unset, "_columns": columns})
    fields = stmt.fields
    simple = all(f.expr is not None and len(f.alias) == 1 for f in fields)
    names: set[str] = set()
    # Columns selected as themselves (``SELECT payload, payload.x``): in the scope they hold
    # exactly the event's column, so later fields read them as unbound names, inline, and the
    # scope need not keep them.
    itself: set[str] = set()
    w.emit(0, "def select(ev):")
    w.emit(1, "sc = {}")
    if not simple:
        w.emit(1, "out = {}")
    results: list[tuple[str, str]] = []
    saved, compiler.fallthrough = compiler.fallthrough, True
    for i, field in enumerate(fields):
        later = {name for f in fields[i + 1:] for name in var_names(f.expr)}
        if field.expr is None:
            w.emit(1, "out.update(_columns(ev))")
            continue
        fbound: Collection[str] = frozenset(names - itself)
        val = w.expr(field.expr, fbound, "sc", 1)
        head = field.alias[0]
        same = (len(field.alias) == 1 and isinstance(field.expr, n.Var)
                and field.expr.name == head and not _is_bound(head, fbound))
        _store(w, field.alias, val, results if simple else None,
               scoped=head in later and not same)
        if isinstance(head, str):
            names.add(head)
            if same:
                itself.add(head)
            else:
                itself.discard(head)
    compiler.fallthrough = saved
    if simple:
        w.emit(1, "out = {" + ", ".join(f"{k}: {val}" for k, val in results) + "}")
    if stmt.where is not None:
        cond = w.expr(stmt.where, where_bound, "out", 1)
        w.emit(1, f"if {cond} is not True:")
        w.emit(2, "return None")
    w.emit(1, "return out")
    if not any(re.search(r"\bsc\b", line) for line in w.lines[2:]):
        del w.lines[1]  # no scope read: no dict to make per evaluation
    code = compile("\n".join(w.lines) + "\n", "<rule>", "exec")
    exec(code, w.ns)  # noqa: S102 - generated from the AST only; user text is in the namespace
    select: Select = w.ns["select"]
    return select

"""Compile a whole statement (SELECT or FOREACH) into a :class:`CompiledRule`."""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from typing import Any, NamedTuple

from mqferry._rules import nodes as n
from mqferry._rules.codegen import generate_select
from mqferry._rules.compiler import ALL, Compiler, Expr
from mqferry._rules.errors import RuleCompileError, RuleSyntaxError
from mqferry._rules.event import Event, decode_json_value
from mqferry._rules.functions import FunctionTable, builtin_function_table
from mqferry._rules.parser import parse
from mqferry._rules.paths import IndexRef, nested_get, nested_put
from mqferry._rules.source_names import PREFIXES, canonical
from mqferry._rules.topic import topic_matches

__all__ = ["CompiledRule", "Outcome", "RuleResult", "compile_sql", "event_columns"]

Output = dict[str, Any] | list[dict[str, Any]]
_Put = Callable[[Event, dict[str, Any], dict[str, Any] | None], None]


class Outcome(enum.Enum):
    """How one evaluation ended, for the rule metrics."""

    PASSED = "passed"
    #: WHERE was false (EMQX counts it under ``failed.no_result``; mqferry counts it apart).
    FILTERED = "filtered"
    #: FOREACH produced no element (``failed.no_result``).
    NO_RESULT = "no_result"


class RuleResult(NamedTuple):
    """The outcome of :meth:`CompiledRule.run` and the output when it passed."""

    outcome: Outcome
    output: Output | None


_FILTERED = RuleResult(Outcome.FILTERED, None)
_PASSED = Outcome.PASSED
_new_result = tuple.__new__

#: Alias prefixes that make a FROM entry an event topic rather than an MQTT topic filter.


def event_columns(ev: Mapping[str, Any]) -> dict[str, Any]:
    """The columns ``SELECT *`` returns for an event.

    For MQTT messages, ``headers`` holds broker-internal data and, as in EMQX, is not a column;
    other events (a Kafka record's ``headers``) keep it.
    """
    out = dict(ev)
    if "headers" in out and out.get("event", "message.publish") == "message.publish":
        del out["headers"]
    return out


class _FieldSet:
    """Compiled SELECT-like fields: fill an output dict and the scope.

    As EMQX's ``select_and_transform``: every field is put into the output, an undefined value
    too (it shows as null); a field read looks in the fields selected so far (aliased or not:
    EMQX puts both in the map later fields read first) and then in the event.
    """

    def __init__(self, compiler: Compiler, fields: tuple[n.Field, ...],
                 bound: Collection[str]) -> None:
        self.steps: list[tuple[Expr | None, tuple[n.AliasStep, ...], bool]] = []
        names = set(bound) if bound is not ALL else None
        self.heads: set[str] = set()
        self.star = False
        saved, compiler.fallthrough = compiler.fallthrough, True
        for field in fields:
            if field.expr is None:
                self.steps.append((None, (), False))
                self.star = True
                continue
            fbound: Collection[str] = ALL if names is None else frozenset(names)
            head = field.alias[0]
            scoped = isinstance(head, str)
            self.steps.append((compiler.expr(field.expr, fbound), field.alias, scoped))
            if scoped:
                self.heads.add(head)  # type: ignore[arg-type]
                if names is not None:
                    names.add(head)  # type: ignore[arg-type]
        compiler.fallthrough = saved

    def run(self, ev: Event, scope: dict[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for expr, alias, scoped in self.steps:
            if expr is None:
                out.update(event_columns(base))
                continue
            val = expr(ev, scope)
            if len(alias) == 1:
                key = alias[0]
                out[key] = val  # type: ignore[index]
                if scoped:
                    if val is None:
                        _unset(scope, base, key)  # type: ignore[arg-type]
                    else:
                        scope[key] = val  # type: ignore[index]
                continue
            _put(out, scope, ev, alias, base, scoped=scoped, val=val)
        return out

    def collect(self, ev: Event, scope: dict[str, Any],
                base: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
        """Run all fields (FOREACH's); also return the value of the last one, the collection."""
        *first, last = self.steps
        out = self._run_steps(first, ev, scope, base)
        expr, alias, scoped = last
        if expr is None:  # pragma: no cover - the grammar puts an expression last in FOREACH
            return out, None
        val = expr(ev, scope)
        _put(out, scope, ev, alias, base, scoped=scoped, val=val)
        return out, val

    @staticmethod
    def _run_steps(steps: list[tuple[Expr | None, tuple[n.AliasStep, ...], bool]],
                   ev: Event, scope: dict[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for expr, alias, scoped in steps:
            if expr is None:
                out.update(event_columns(base))
                continue
            _put(out, scope, ev, alias, base, scoped=scoped, val=expr(ev, scope))
        return out


def _unset(scope: dict[str, Any], base: Mapping[str, Any], key: str) -> None:
    # An undefined alias does not hide what the fields read under that name: EMQX looks an
    # undefined name up in the columns next (the event, plus in DO the FOREACH fields and the
    # element). The scope holds the latter, so put the column's value back rather than drop it.
    if key in base:
        scope[key] = base[key]
    else:
        scope.pop(key, None)


def _put(out: dict[str, Any], scope: dict[str, Any], ev: Event,
         alias: tuple[n.AliasStep, ...], base: Mapping[str, Any], *, scoped: bool,
         val: Any) -> None:
    """Store ``val`` at ``alias`` in the output (and in the scope when later fields read it)."""
    head = str(alias[0])
    if len(alias) == 1:
        out[head] = val
        if scoped:
            if val is None:
                _unset(scope, base, head)
            else:
                scope[head] = val
        return
    current = out.get(head)
    if head == "payload" and isinstance(current, str | bytes):
        # EMQX decodes a selected payload before writing into it through an alias path, so
        # `SELECT payload, 'x' as payload.a` updates the payload in place.
        current = (ev.decoded_payload() if current is ev.get("payload")
                   else decode_json_value(current))
    steps = alias[1:]
    if any(type(s) is IndexRef for s in steps):
        # EMQX reads such an index from the fields selected so far, when putting.
        steps = tuple(nested_get(out, s.path) if isinstance(s, IndexRef) else s for s in steps)
    put = nested_put(current, steps, val)
    out[head] = put
    if scoped:
        scope[head] = put


class CompiledRule:
    """A rule statement compiled once into closures.

    Attributes:
        sql: the source text.
        sources: every FROM entry, in order.
        topic_filters: the FROM entries that are MQTT topic filters.
        event_topics: the FROM entries that are event topics (they start with ``$``).
        is_foreach: whether the statement is FOREACH.
        blocking: whether the statement calls a function that may take long (``jq``, or a
            regular expression function whose pattern may need the backtracking engine): the
            runtime evaluates such a rule in a worker thread, never on the event loop.
        select: for a SELECT statement, the generated function :meth:`run` calls: an
            :class:`Event` in, the output out, ``None`` when WHERE is false (it raises as
            :meth:`run` does). ``None`` for FOREACH. The runtime calls it directly on its
            hot path.
    """

    def __init__(self, sql: str, stmt: n.Statement, functions: FunctionTable) -> None:
        self.sql = sql
        self.sources: tuple[str, ...] = stmt.sources
        self.event_topics: tuple[str, ...] = tuple(s for s in stmt.sources if _is_event(s))
        self.topic_filters: tuple[str, ...] = tuple(
            s for s in stmt.sources if not _is_event(s)
        )
        _check_filters(self.topic_filters)
        self.is_foreach = stmt.is_foreach
        self.select: Callable[[Event], dict[str, Any] | None] | None = None
        compiler = Compiler(functions)
        fields = stmt.fields
        if stmt.is_foreach:
            # The last FOREACH expression is the collection; its alias names the element.
            last = fields[-1]
            self._item_key: str = (
                str(last.alias[0]) if last.explicit else "item"
            )
        self._fields = _FieldSet(compiler, fields, frozenset())
        where_bound: Collection[str] = ALL if self._fields.star else frozenset(self._fields.heads)
        self._where = (
            compiler.condition(stmt.where, where_bound) if stmt.where is not None else None
        )
        # INCASE and DO see the event, the FOREACH fields and the element (EMQX merges them).
        item_bound: Collection[str] = (
            ALL if self._fields.star
            else frozenset({*self._fields.heads, self._item_key}) if stmt.is_foreach
            else frozenset()
        )
        self._incase = (
            compiler.condition(stmt.incase, item_bound) if stmt.incase is not None else None
        )
        self._do = (
            _FieldSet(compiler, stmt.do, item_bound) if stmt.do is not None else None
        )
        if stmt.is_foreach:
            last_expr = last.expr
            self._decode_collection = isinstance(last_expr, n.Var) and last_expr.name == "payload"
        else:
            # The closures above define the semantics (and refuse unknown functions); SELECT
            # runs as one generated function that inlines the common nodes (see codegen).
            self.select = generate_select(compiler, stmt, where_bound, put=_put,
                                          unset=_unset, columns=event_columns)
        self.blocking: bool = compiler.blocking

    def matches_topic(self, topic: str) -> bool:
        """Whether an MQTT topic matches one of the FROM topic filters."""
        return any(topic_matches(f, topic) for f in self.topic_filters)

    def matches_event(self, name: str) -> bool:
        """Whether an event name (``$bridges/kafka_consumer:x``) is one of the FROM event topics.

        ``$bridges/...`` and ``$sources/...`` name the same source.
        """
        wanted = canonical(name)
        return any(canonical(t) == wanted for t in self.event_topics)

    def run(self, event: Mapping[str, Any]) -> RuleResult:
        """Evaluate the rule against an event (FROM is not checked).

        Raises:
            RuleEvalError: a function failed, arithmetic on undefined, or the payload is not JSON.
        """
        ev = event if type(event) is Event else Event(event)
        select = self.select
        if select is not None:
            out = select(ev)
            # tuple.__new__ skips the NamedTuple's Python-level constructor.
            return _FILTERED if out is None else _new_result(RuleResult, (_PASSED, out))
        return self._run_foreach(ev, {})

    def apply(self, event: Mapping[str, Any]) -> Output | None:
        """Evaluate the rule; the output, or None when WHERE is false (FOREACH may give ``[]``).

        Use :meth:`run` to tell those two apart.

        Raises:
            RuleEvalError: as :meth:`run`.
        """
        ev = event if type(event) is Event else Event(event)
        select = self.select
        if select is not None:
            return select(ev)
        return self._run_foreach(ev, {}).output

    def _run_foreach(self, ev: Event, scope: dict[str, Any]) -> RuleResult:
        # All but the last expression only bind names; the last gives the collection. The output
        # of all of them is what WHERE sees, merged over the event.
        selected, collection = self._fields.collect(ev, scope, ev)
        if self._where is not None and not self._where(ev, selected):
            return _FILTERED
        if self._decode_collection and isinstance(collection, str | bytes):
            # `FOREACH payload` iterates over the decoded payload (EMQX `ensure_list`).
            collection = (ev.decoded_payload() if collection is ev.get("payload")
                          else decode_json_value(collection))
        key = self._item_key
        results: list[dict[str, Any]] = []
        if type(collection) is list:
            for item in collection:
                item_scope = {**selected, key: item}
                if self._incase is not None and not self._incase(ev, item_scope):
                    continue
                base = {**ev, **selected, key: item}
                if self._do is None:
                    results.append(event_columns(base))
                else:
                    results.append(self._do.run(ev, item_scope, base))
        if not results:
            # EMQX counts this as no result, and its SQL tester shows the empty list.
            return RuleResult(Outcome.NO_RESULT, [])
        return RuleResult(Outcome.PASSED, results)

    def __repr__(self) -> str:
        return f"CompiledRule({self.sql!r})"


#: FROM entries that name events rather than MQTT topics: EMQX's broker events and the
#: sources' events (either spelling). Other entries, ``$SYS/#`` included, are topic filters.
EVENT_PREFIXES = ("$events/", *PREFIXES)
#: prefixes of subscriptions that share or queue messages among clients
_SHARED = ("$share/", "$queue/")


def _is_event(source: str) -> bool:
    return source.startswith(EVENT_PREFIXES)


def _check_filters(filters: tuple[str, ...]) -> None:
    # Imported here: the MQTT package imports the config, which imports this one.
    from mqferry._mqtt.strings import filter_problem

    for topic_filter in filters:
        if topic_filter.startswith(_SHARED):
            raise RuleCompileError(
                f"FROM {topic_filter!r}: a rule takes the topic filter itself; to share the "
                "subscriptions among mqferry instances, set mqtt.share_group")
        problem = filter_problem(topic_filter)
        if problem is not None:
            shown = repr(topic_filter)
            if len(topic_filter) > 80:  # a filter may be 64 KiB long: the start names it
                shown = f"{topic_filter[:80]!r}... ({len(topic_filter)} characters)"
            raise RuleCompileError(f"FROM {shown} is not a valid MQTT topic filter: {problem}")


def compile_sql(sql: str, functions: FunctionTable | None = None) -> CompiledRule:
    """Parse and compile rule SQL.

    Args:
        sql: one SELECT or FOREACH statement.
        functions: the callable functions; None means the built-in catalogue only.

    Raises:
        RuleSyntaxError: the text does not parse.
        RuleCompileError: an unknown function or a wrong number of arguments.
    """
    table = functions if functions is not None else builtin_function_table()
    try:
        return CompiledRule(sql, parse(sql), table)
    except RecursionError:
        # Parsing and compiling recurse once per level of nesting: a statement nested past
        # the interpreter's limit is refused as written, not as an internal error.
        raise RuleSyntaxError("the statement is nested too deeply", line=1, column=1,
                              sql=sql) from None

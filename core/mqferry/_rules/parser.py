"""Parse rule SQL text into a :class:`~mqferry._rules.nodes.Statement` (grammar in grammar.lark)."""

from __future__ import annotations

import difflib
import functools
from importlib import resources
from pathlib import Path
from typing import Any

import lark
from lark import Token, Transformer, v_args

from mqferry._rules import nodes as n
from mqferry._rules import saved_parser
from mqferry._rules.errors import RuleSyntaxError
from mqferry._rules.paths import HEAD, TAIL, End, IndexRef

__all__ = ["parse"]

_KEYWORDS = (
    "SELECT", "FOREACH", "DO", "INCASE", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "IN", "CASE",
    "WHEN", "THEN", "ELSE", "END", "TRUE", "FALSE", "DIV", "MOD",
)
_TERMINAL_NAMES = {
    "COMMA": "','", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "DOT": "'.'",
    "STAR": "'*'", "SLASH": "'/'", "PLUS": "'+'", "MINUS": "'-'", "RANGE": "'..'",
    "COMP_OP": "comparison operator", "NAME": "name", "INT": "integer", "FLOAT": "number",
    "SQ_STRING": "string", "DQ_STRING": "quoted name", "$END": "end of input",
}


#: The parser saved by ``scripts/compile.py`` beside the grammar (:mod:`.saved_parser`).
CACHE_FILE = "grammar.lark.saved"
# The basic lexer makes keywords reserved everywhere: the contextual one would read a misplaced
# FROM as a column name and report the error far from where it is.
_OPTIONS: dict[str, object] = {"parser": "lalr", "lexer": "basic", "propagate_positions": True,
                               "maybe_placeholders": True}


def _grammar() -> str:
    return resources.files("mqferry._rules").joinpath("grammar.lark").read_text("utf-8")


def _build(grammar: str) -> lark.Lark:
    return lark.Lark(grammar, **_OPTIONS)


def cache_path() -> Path | None:
    """Where the saved parser goes: beside the grammar, when the package is a directory."""
    package = resources.files("mqferry._rules")
    return Path(str(package), CACHE_FILE) if isinstance(package, Path) else None


def save_parser() -> Path | None:
    """Build the parser from the grammar and save it beside the grammar; where (``None``: the
    package is not a directory).

    Raises:
        OSError: it could not be written.
    """
    path = cache_path()
    if path is not None:
        grammar = _grammar()
        saved_parser.save(_build(grammar), path, grammar, _OPTIONS)
    return path


@functools.cache
def _parser() -> lark.Lark:
    grammar = _grammar()
    path = cache_path()
    loaded = None if path is None else saved_parser.load(path, grammar, _OPTIONS)
    return loaded if loaded is not None else _build(grammar)


def parse(sql: str) -> n.Statement:
    """Parse one rule statement.

    Raises:
        RuleSyntaxError: with the line and column of the first problem.
    """
    try:
        tree = _parser().parse(sql)
    except lark.UnexpectedToken as exc:
        raise _unexpected_token(sql, exc) from None
    except lark.UnexpectedCharacters as exc:
        raise RuleSyntaxError(
            f"unexpected character {sql[exc.pos_in_stream or 0]!r}",
            line=exc.line, column=exc.column, sql=sql,
        ) from None
    except lark.UnexpectedEOF as exc:  # pragma: no cover - the LALR parser reports UnexpectedToken
        raise RuleSyntaxError("unexpected end of input", line=exc.line, column=exc.column,
                              sql=sql) from None
    try:
        stmt: n.Statement = _ToNodes(sql).transform(tree)
    except lark.exceptions.VisitError as exc:
        if isinstance(exc.orig_exc, RuleSyntaxError):
            raise exc.orig_exc from None
        raise
    return stmt


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of input"
    return repr(str(token))


def _expected(names: set[str]) -> list[str]:
    shown = {_TERMINAL_NAMES.get(t, t) for t in names if not t.startswith("__")}
    return sorted(shown)


def _unexpected_token(sql: str, exc: lark.UnexpectedToken) -> RuleSyntaxError:
    token = exc.token
    expected = set(exc.expected)
    # `SELECT a FORM "t"` parses `FORM` as an alias of `a` and fails on the string after it; the
    # useful message points at the misspelt keyword, so look back one token for a near-keyword.
    prev = _previous_token(sql, token)
    for candidate in (prev, token):
        if candidate is None or candidate.type != "NAME":
            continue
        close = difflib.get_close_matches(str(candidate).upper(), _KEYWORDS, n=1, cutoff=0.6)
        if close and close[0] != str(candidate).upper():
            line, col = candidate.line or 1, candidate.column or 1
            return RuleSyntaxError(f"unexpected {_describe(candidate)}, expected {close[0]}",
                                   line=line, column=col, sql=sql)
    line = token.line if token.line is not None else exc.line
    col = token.column if token.column is not None else exc.column
    if token.type == "$END":
        lines = sql.splitlines() or [""]
        line, col = len(lines), len(lines[-1]) + 1
    wanted = _expected(expected)
    if len(wanted) == 1:
        tail = f", expected {wanted[0]}"
    else:
        tail = f", expected one of {', '.join(wanted)}"
    return RuleSyntaxError(f"unexpected {_describe(token)}{tail}", line=line, column=col, sql=sql)


def _previous_token(sql: str, token: Token) -> Token | None:
    if token.start_pos is None:
        return None
    prev = None
    try:
        for tok in _parser().lex(sql, dont_ignore=False):
            if tok.start_pos is not None and tok.start_pos >= token.start_pos:
                break
            prev = tok
    except lark.LarkError:
        return None
    return prev


def _unquote(token: Token | str) -> str:
    text = str(token)
    if len(text) >= 2 and text[0] in "'\"" and text[-1] == text[0]:
        # EMQX keeps backslashes in string literals as written (see the `unescape` function).
        return text[1:-1]
    return text


def _path_of(node: n.Node) -> tuple[str | int | End, ...] | None:
    """The output key EMQX derives for an unaliased field, if it is a plain path."""
    if isinstance(node, n.Var):
        return (node.name,)
    if isinstance(node, n.GetKey):
        head = _path_of(node.target)
        return None if head is None else (*head, node.key)
    if isinstance(node, n.GetIndex) and isinstance(node.index, n.Const):
        head = _path_of(node.target)
        idx = node.index.value
        if head is None or not (type(idx) is int or isinstance(idx, End)):
            return None
        return (*head, idx)
    if isinstance(node, n.GetRange):
        return _path_of(node.target)
    return None


@v_args(inline=True)
class _ToNodes(Transformer[Token, Any]):
    def __init__(self, sql: str) -> None:
        super().__init__()
        self._sql = sql

    # ---- statements
    def start(self, stmt: n.Statement) -> n.Statement:
        return stmt

    def select_stmt(self, _kw: Token, fields: tuple[n.Field, ...], sources: tuple[str, ...],
                    where: n.Node | None) -> n.Statement:
        return n.Statement(False, fields, sources, where)

    def foreach_stmt(self, _kw: Token, fields: tuple[n.Field, ...], do: tuple[n.Field, ...] | None,
                     incase: n.Node | None, sources: tuple[str, ...],
                     where: n.Node | None) -> n.Statement:
        return n.Statement(True, fields, sources, where, do, incase)

    def do_clause(self, _kw: Token, fields: tuple[n.Field, ...]) -> tuple[n.Field, ...]:
        return fields

    def incase_clause(self, _kw: Token, cond: n.Node) -> n.Node:
        return cond

    def where_clause(self, _kw: Token, cond: n.Node) -> n.Node:
        return cond

    def from_clause(self, _kw: Token, *sources: str) -> tuple[str, ...]:
        return sources

    def source(self, tok: Token) -> str:
        return _unquote(tok)

    # ---- fields
    def fields(self, *items: n.Field) -> tuple[n.Field, ...]:
        return items

    def star_field(self, _tok: Token) -> n.Field:
        return n.Field(None, (), False, "*")

    @v_args(meta=True, inline=True)
    def plain_field(self, meta: Any, expr: n.Node) -> n.Field:
        text = self._sql[meta.start_pos:meta.end_pos]
        path = _path_of(expr)
        if path is None:
            if isinstance(expr, n.Const) and isinstance(expr.value, str):
                path = (expr.value,)
            else:
                path = (text,)
        return n.Field(expr, path, False, text)

    @v_args(meta=True, inline=True)
    def alias_field(self, meta: Any, expr: n.Node, *rest: Any) -> n.Field:
        alias = rest[-1]
        text = self._sql[meta.start_pos:meta.end_pos]
        return n.Field(expr, alias, True, text)

    def alias(self, head: str, *steps: n.AliasStep) -> tuple[n.AliasStep, ...]:
        return (head, *steps)

    def alias_head(self, tok: Token) -> str:
        return _unquote(tok)

    def alias_key(self, tok: Token) -> str:
        return _unquote(tok)

    # rulesql reads the literal index `0` as the head of the list and `-0` as its tail: an alias
    # `x as c[0]` puts x before the first element and `x as c[-0]` after the last one.
    def alias_index(self, tok: Token) -> int | End:
        return HEAD if str(tok) == "0" else int(tok)

    def alias_neg_index(self, _minus: Token, tok: Token) -> int | End:
        return TAIL if str(tok) == "0" else -int(tok)

    def alias_ref_index(self, *names: Token) -> IndexRef:
        return IndexRef(tuple(str(t) for t in names))

    # ---- expressions
    def or_op(self, left: n.Node, _kw: Token, right: n.Node) -> n.Node:
        return n.Or(left, right)

    def and_op(self, left: n.Node, _kw: Token, right: n.Node) -> n.Node:
        return n.And(left, right)

    def not_op(self, _kw: Token, operand: n.Node) -> n.Node:
        return n.Not(operand)

    def compare(self, left: n.Node, op: Token, right: n.Node) -> n.Node:
        return n.Compare(str(op), left, right)

    def in_op(self, operand: n.Node, _kw: Token, choices: tuple[n.Node, ...]) -> n.Node:
        return n.In(operand, choices, False)

    def not_in_op(self, operand: n.Node, _not: Token, _in: Token,
                  choices: tuple[n.Node, ...]) -> n.Node:
        return n.In(operand, choices, True)

    def arith(self, left: n.Node, op: Token, right: n.Node) -> n.Node:
        return n.Arith(str(op).lower(), left, right)

    def neg(self, _op: Token, operand: n.Node) -> n.Node:
        # `-0` stays a negation so that an index `[-0]` can be told from `[0]`.
        if (isinstance(operand, n.Const) and type(operand.value) in (int, float)
                and operand.value != 0):
            return n.Const(-operand.value)
        return n.Neg(operand)

    def pos(self, _op: Token, operand: n.Node) -> n.Node:
        return operand

    def get_key(self, target: n.Node, key: str) -> n.Node:
        return n.GetKey(target, key)

    def get_index(self, target: n.Node, index: n.Node) -> n.Node:
        # `[0]` and `[-0]` are the head and the tail of a list: they read as undefined, and as
        # the key of an unaliased field they add an element (see `alias_index`).
        if isinstance(index, n.Const) and type(index.value) is int and index.value == 0:
            index = n.Const(HEAD)
        elif (isinstance(index, n.Neg) and isinstance(index.operand, n.Const)
              and type(index.operand.value) is int and index.operand.value == 0):
            index = n.Const(TAIL)
        return n.GetIndex(target, index)

    def get_range(self, target: n.Node, bounds: tuple[int, int]) -> n.Node:
        return n.GetRange(target, *bounds)

    def key(self, tok: Token) -> str:
        return _unquote(tok)

    def range_bounds(self, start: int, _dots: Token, end: int) -> tuple[int, int]:
        return start, end

    def signed_int(self, *toks: Token | None) -> int:
        value = int(toks[-1])  # type: ignore[arg-type]
        return -value if len(toks) == 2 and toks[0] is not None else value

    def int_lit(self, tok: Token) -> n.Node:
        return n.Const(int(tok))

    def float_lit(self, tok: Token) -> n.Node:
        return n.Const(float(tok))

    def str_lit(self, tok: Token) -> n.Node:
        return n.Const(_unquote(tok))

    def true_lit(self, _tok: Token) -> n.Node:
        return n.Const(True)

    def false_lit(self, _tok: Token) -> n.Node:
        return n.Const(False)

    def var(self, tok: Token) -> n.Node:
        return n.Var(str(tok))

    def quoted_var(self, tok: Token) -> n.Node:
        return n.Var(_unquote(tok))

    def list_lit(self, items: tuple[n.Node, ...] | None) -> n.Node:
        return n.ListLit(items or ())

    def range_lit(self, bounds: tuple[int, int]) -> n.Node:
        return n.RangeLit(*bounds)

    @v_args(meta=True, inline=True)
    def call(self, meta: Any, name: str, args: tuple[n.Node, ...] | None) -> n.Node:
        return n.Call(name, args or (), meta.line, meta.column)

    def func_name(self, tok: Token) -> str:
        return str(tok).lower() if tok.type in ("DIV", "MOD") else str(tok)

    def case_expr(self, _case: Token, *parts: Any) -> n.Node:
        # parts: [subject?], when..., [else?], END
        items = [p for p in parts if not isinstance(p, Token)]
        subject = None
        if items and not (isinstance(items[0], tuple) and items[0][0] == "when"):
            subject = items.pop(0)
        default = None
        if items and isinstance(items[-1], tuple) and items[-1][0] == "else":
            default = items.pop()[1]
        whens = tuple((w[1], w[2]) for w in items)
        return n.Case(subject, whens, default)

    def when_clause(self, _w: Token, cond: n.Node, _t: Token, value: n.Node) -> tuple[Any, ...]:
        return ("when", cond, value)

    def else_clause(self, _e: Token, value: n.Node) -> tuple[Any, ...]:
        return ("else", value)

    def expr_list(self, *items: n.Node) -> tuple[n.Node, ...]:
        return items

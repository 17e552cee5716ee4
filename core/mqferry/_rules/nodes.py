"""The syntax tree of a rule statement, produced by the parser and consumed by the compiler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from mqferry._rules.paths import End, IndexRef

__all__ = [
    "AliasStep",
    "And",
    "Arith",
    "Call",
    "Case",
    "Compare",
    "Const",
    "Field",
    "GetIndex",
    "GetKey",
    "GetRange",
    "In",
    "ListLit",
    "Neg",
    "Node",
    "Not",
    "Or",
    "RangeLit",
    "Statement",
    "Var",
]


@dataclass(frozen=True)
class Const:
    value: Any


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class GetKey:
    target: Node
    key: str


@dataclass(frozen=True)
class GetIndex:
    target: Node
    index: Node


@dataclass(frozen=True)
class GetRange:
    target: Node
    start: int
    end: int


@dataclass(frozen=True)
class ListLit:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class RangeLit:
    start: int
    end: int


@dataclass(frozen=True)
class Neg:
    operand: Node


@dataclass(frozen=True)
class Arith:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class And:
    left: Node
    right: Node


@dataclass(frozen=True)
class Or:
    left: Node
    right: Node


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class In:
    operand: Node
    choices: tuple[Node, ...]
    negated: bool


@dataclass(frozen=True)
class Case:
    subject: Node | None
    whens: tuple[tuple[Node, Node], ...]
    default: Node | None


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Node, ...]
    line: int
    column: int


Node: TypeAlias = (
    Const | Var | GetKey | GetIndex | GetRange | ListLit | RangeLit | Neg | Arith | Compare
    | And | Or | Not | In | Case | Call
)


#: One step of an output path: a key, a 1-based index, a list end, or an index read by name.
AliasStep: TypeAlias = str | int | End | IndexRef


@dataclass(frozen=True)
class Field:
    """One SELECT/FOREACH/DO item: ``*`` (``expr`` is None), or an expression with an output path.

    ``alias`` is the output path (keys, 1-based indexes, and the list ends of ``[0]``/``[-0]``);
    ``explicit`` tells an ``AS`` alias from the key EMQX derives for an unaliased field; ``text``
    is the source text of ``expr``.
    """

    expr: Node | None
    alias: tuple[AliasStep, ...]
    explicit: bool
    text: str


@dataclass(frozen=True)
class Statement:
    """A parsed rule: SELECT, or FOREACH with its DO and INCASE parts."""

    is_foreach: bool
    fields: tuple[Field, ...]
    sources: tuple[str, ...]
    where: Node | None
    do: tuple[Field, ...] | None = None
    incase: Node | None = None

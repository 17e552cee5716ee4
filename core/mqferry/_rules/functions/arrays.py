"""Array functions; positions are 1-based as in EMQX."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mqferry._rules import values
from mqferry._rules.functions._args import BadArg, as_int, as_list

__all__ = ["FUNCTIONS"]


def nth(n: Any, items: Any) -> Any:
    """Element ``n`` (1-based); out of range is an error."""
    index, seq = as_int(n), as_list(items)
    if not 1 <= index <= len(seq):
        raise BadArg(f"index {index} out of range 1..{len(seq)}")
    return seq[index - 1]


def length(items: Any) -> int:
    """Number of elements."""
    return len(as_list(items))


def sublist(*args: Any) -> list[Any]:
    """``sublist(len, list)``: the first ``len`` elements; ``sublist(start, len, list)``: ``len``
    elements from position ``start``."""
    if len(args) == 2:
        count, seq = as_int(args[0]), as_list(args[1])
        if count < 0:
            raise BadArg("length must not be negative")
        return seq[:count]
    start, count, seq = as_int(args[0]), as_int(args[1]), as_list(args[2])
    if start < 1 or start > len(seq) + 1 or count < 0:
        raise BadArg(f"start {start} out of range")
    return seq[start - 1:start - 1 + count]


def first(items: Any) -> Any:
    """The first element; an empty array is an error."""
    seq = as_list(items)
    if not seq:
        raise BadArg("empty array")
    return seq[0]


def last(items: Any) -> Any:
    """The last element; an empty array is an error."""
    seq = as_list(items)
    if not seq:
        raise BadArg("empty array")
    return seq[-1]


def contains(item: Any, items: Any) -> bool:
    """Whether the array holds the item (exact match: 1 is not 1.0)."""
    return any(values.exact_eq(item, x) for x in as_list(items))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "nth": nth, "length": length, "sublist": sublist, "first": first, "last": last,
    "contains": contains,
}
ARITY: dict[str, tuple[int, int | None]] = {"sublist": (2, 3)}

"""Reading and writing nested values by path (EMQX ``emqx_rule_maps``).

A path is a list of steps: a ``str`` is a map key, an ``int`` a 1-based list index (negative
counts from the end), and :data:`HEAD`/:data:`TAIL` are the ``[0]``/``[-0]`` of an alias, which
put a new element before the first or after the last one (an alias's :class:`IndexRef` is
resolved to one of these before the put). Reading through a string that holds
JSON decodes it on the way, as EMQX does for nested JSON; a failed decode reads as undefined.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "HEAD", "TAIL", "End", "IndexRef", "get_index", "get_step", "has_step", "nested_get",
    "nested_put",
]


class End(enum.Enum):
    """An end of a list, written ``[0]`` (head) or ``[-0]`` (tail) in rule SQL."""

    HEAD = "head"
    TAIL = "tail"


HEAD = End.HEAD
TAIL = End.TAIL


@dataclass(frozen=True)
class IndexRef:
    """An alias index given by a name or path, ``x as c[i]`` or ``x as c[p.i]``.

    As EMQX's ``emqx_rule_maps:do_put``, the index is read from the fields selected so far
    (not from the event) when the value is put.
    """

    path: tuple[str, ...]


def get_index(data: Any, index: Any) -> Any:
    """Element ``index`` (1-based, negative from the end) of a list; ``None`` when absent.

    Index 0, ``[0]``/``[-0]`` and anything that is not an integer read as undefined, as in EMQX.
    """
    if type(data) is not list or type(index) is not int or index == 0:
        return None
    n = len(data)
    if index > 0:
        return data[index - 1] if index <= n else None
    return data[n + index] if -index <= n else None


def get_step(data: Any, step: Any) -> Any:
    """Follow one path step from ``data``."""
    if type(data) is dict and type(step) is str:  # the common case first: no union check
        return data.get(step)
    if isinstance(data, str | bytes) and data:
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
    if type(step) is str:
        return data.get(step) if type(data) is dict else None
    return get_index(data, step)


def has_step(data: Any, step: Any) -> bool:
    """Whether one path step from ``data`` finds something, JSON null included."""
    if isinstance(data, str | bytes) and data:
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
    if type(step) is str:
        return type(data) is dict and step in data
    if type(data) is not list or type(step) is not int or step == 0:
        return False
    return -len(data) <= step <= len(data)


def nested_get(data: Any, path: Sequence[Any]) -> Any:
    """Follow every step of ``path``; ``None`` as soon as a step is missing."""
    for step in path:
        data = get_step(data, step)
        if data is None:
            return None
    return data


def nested_put(data: Any, path: Sequence[Any], value: Any) -> Any:
    """Return a copy of ``data`` with ``value`` stored at ``path`` (``data`` is not changed).

    As EMQX's ``nested_put``: an undefined value is stored too (it shows as null); a key step
    into something that is not a map makes a new map; an index step into something that is not
    a list makes a one-element list; index 0, a non-integer index or one beyond either end leaves
    the list as it is; :data:`HEAD` and :data:`TAIL` add an element at that end.
    """
    if not path:
        return value
    step, rest = path[0], path[1:]
    if type(step) is str:
        base = dict(data) if type(data) is dict else {}
        base[step] = nested_put(base.get(step), rest, value)
        return base
    if type(data) is not list:
        return [nested_put(None, rest, value)]
    if isinstance(step, End):
        new = nested_put(None, rest, value)
        return [new, *data] if step is HEAD else [*data, new]
    n = len(data)
    if type(step) is not int or step == 0 or not -n <= step <= n:
        return data
    items = list(data)
    pos = step - 1 if step > 0 else n + step
    items[pos] = nested_put(items[pos], rest, value)
    return items

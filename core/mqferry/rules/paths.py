"""Reading and writing nested values by path (EMQX ``emqx_rule_maps``).

A path is a list of steps: a ``str`` is a map key, an ``int`` a 1-based list index (negative
counts from the end). Reading through a string that holds JSON decodes it on the way, as EMQX does
for nested JSON; a failed decode reads as undefined.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

__all__ = ["get_index", "get_step", "nested_get", "nested_put"]


def get_index(data: Any, index: Any) -> Any:
    """Element ``index`` (1-based, negative from the end) of a list; ``None`` when absent."""
    if type(data) is not list or type(index) is not int or index == 0:
        return None
    n = len(data)
    if index > 0:
        return data[index - 1] if index <= n else None
    return data[n + index] if -index <= n else None


def get_step(data: Any, step: Any) -> Any:
    """Follow one path step from ``data``."""
    if isinstance(data, str | bytes) and data:
        try:
            data = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
    if type(step) is str:
        return data.get(step) if type(data) is dict else None
    return get_index(data, step)


def nested_get(data: Any, path: Sequence[Any]) -> Any:
    """Follow every step of ``path``; ``None`` as soon as a step is missing."""
    for step in path:
        data = get_step(data, step)
        if data is None:
            return None
    return data


def nested_put(data: Any, path: Sequence[Any], value: Any) -> Any:
    """Return a copy of ``data`` with ``value`` stored at ``path``.

    An undefined value leaves ``data`` untouched. A step into something that is not a map makes a
    new map; an index into a non-list makes a new one-element list; index 0 or beyond the end
    leaves the list unchanged (EMQX ``setnth``).
    """
    if value is None:
        return data
    if not path:
        return value
    step, rest = path[0], path[1:]
    if type(step) is str:
        base = dict(data) if type(data) is dict else {}
        base[step] = nested_put(base.get(step), rest, value)
        return base
    if type(data) is not list:
        return [nested_put(None, rest, value)]
    items = list(data)
    n = len(items)
    pos = step - 1 if step > 0 else n + step
    if step != 0 and 0 <= pos < n:
        items[pos] = nested_put(items[pos], rest, value)
    return items

""""Did you mean ...?": the closest known name to a mistyped key or type name."""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

__all__ = ["did_you_mean", "known_fields"]


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known``, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def known_fields(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The field names (and aliases) of the model that holds the key at ``loc``.

    ``loc`` is a pydantic error location whose last part is the unknown key; ``[]`` when the
    place is not a model's (a mapping of names, an unknown shape).
    """
    found = _walk(model, list(loc[:-1]))
    if found is None:
        return []
    names = list(found.model_fields)
    names += [f.alias for f in found.model_fields.values() if f.alias]
    return names


def _walk(annotation: Any, loc: list[int | str]) -> type[BaseModel] | None:
    for candidate in _unwrap(annotation):
        if not loc:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                return candidate
            continue
        part, rest = loc[0], loc[1:]
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            if not isinstance(part, str):
                continue
            if part == candidate.__name__:  # the member of a union pydantic names
                if (found := _walk(candidate, rest)) is not None:
                    return found
                continue
            field = candidate.model_fields.get(part) or next(
                (f for f in candidate.model_fields.values() if f.alias == part), None)
            if field is not None and (found := _walk(field.annotation, rest)) is not None:
                return found
            continue
        origin, args = get_origin(candidate), get_args(candidate)
        if origin in (dict, Mapping) and len(args) == 2:  # key and value types
            found = _walk(args[1], rest)
        elif origin in (list, tuple, Sequence) and args and isinstance(part, int):
            found = _walk(args[0], rest)
        else:
            found = None
        if found is not None:
            return found
    return None


def _unwrap(annotation: Any) -> list[Any]:
    # Annotated[X, ...] is X; X | Y is each of them (for a union of several, pydantic names the
    # member in the location, which _walk skips).
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [t for arg in get_args(annotation) for t in _unwrap(arg)]
    return [annotation]

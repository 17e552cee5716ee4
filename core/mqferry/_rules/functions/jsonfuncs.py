"""JSON encoding and decoding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from mqferry._rules import values
from mqferry._rules.functions._args import BadArg

__all__ = ["FUNCTIONS"]


def json_encode(value: Any) -> str:
    """The value as compact JSON text (undefined encodes as ``null``)."""
    return values.json_dumps(value)


def json_decode(text: Any) -> Any:
    """Parse JSON text; invalid JSON is an error."""
    if not isinstance(text, str | bytes):
        raise BadArg("json_decode needs a string")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadArg(f"invalid JSON: {exc}") from exc


FUNCTIONS: dict[str, Callable[..., Any]] = {"json_encode": json_encode, "json_decode": json_decode}

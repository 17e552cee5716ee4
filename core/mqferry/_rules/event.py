"""The event mapping rules read, with a payload JSON cache shared by every rule.

A message is decoded at most once however many rules read ``payload.x``: the runtime wraps the
message in one :class:`Event` and hands that same object to every matching rule; the first rule that
reads into the payload decodes it and stores the result on the event. A plain mapping passed to
``CompiledRule.apply`` is wrapped in a fresh ``Event`` for that call, so it gets the same semantics
but no sharing across rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from mqferry._rules.errors import RuleEvalError

__all__ = ["UNSET", "Event"]

#: The value of ``Event._decoded`` before the payload is decoded (generated rule code reads the
#: slot directly rather than pay for a method call).
UNSET: Any = object()
_UNSET = UNSET
_update = dict.update
_loads = orjson.loads


class Event(dict[str, Any]):
    """A rule input: a dict of columns plus a lazily decoded JSON payload.

    A ``bytes`` payload that is valid UTF-8 is stored as ``str`` (EMQX forwards non-JSON payloads
    as strings); other bytes stay bytes.

    Args:
        columns: the event columns (see the module docs of ``mqferry._rules``).
    """

    __slots__ = ("_decoded",)

    def __init__(self, columns: Mapping[str, Any] = (), /, **extra: Any) -> None:  # type: ignore[assignment]
        # Not super().__init__: an event is made per message, and a bound dict.update is the
        # cheapest copy into a dict subclass (measured; see benchmarks/bench_rules.py).
        _update(self, columns)
        if extra:
            _update(self, extra)
        self._decoded: Any = _UNSET
        payload: Any = self.get("payload")
        tp = type(payload)
        if tp is bytes:
            try:  # noqa: SIM105 - contextlib.suppress costs a context manager per message
                self["payload"] = payload.decode("utf-8")
            except UnicodeDecodeError:
                pass
        elif tp is bytearray or isinstance(payload, bytes | bytearray):
            try:
                self["payload"] = bytes(payload).decode("utf-8")
            except UnicodeDecodeError:
                self["payload"] = bytes(payload)

    def decoded_payload(self) -> Any:
        """The payload decoded as JSON, decoded on the first call and cached.

        A payload that is already a map or list is returned as is.

        Raises:
            RuleEvalError: reason ``decode_json_failed`` when the payload is not JSON.
        """
        value = self._decoded
        if value is _UNSET:
            payload = self.get("payload")
            if type(payload) is str:
                try:
                    value = _loads(payload)
                except orjson.JSONDecodeError:
                    value = decode_json_value(payload)  # raises the rule error
            else:
                value = decode_json_value(payload)
            self._decoded = value
        return value


def decode_json_value(payload: Any) -> Any:
    """Decode a payload column as JSON, raising ``RuleEvalError`` if it is not JSON."""
    tp = type(payload)
    if tp is str or tp is bytes or isinstance(payload, str | bytes | bytearray):
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError:
            text = payload if isinstance(payload, str) else repr(payload)
            raise RuleEvalError("decode_json_failed", text[:200]) from None
    return payload

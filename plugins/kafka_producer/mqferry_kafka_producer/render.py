"""Rendering a rule output into a Kafka record: key, value, timestamp and headers.

Missing-value rules (documented per field in the README):

- ``key``: a template that is a single placeholder with no value gives a null key; otherwise
  missing placeholders render as ``""`` (an empty key is then an empty string, not null).
- ``value``: the same rule as ``key``.
- ``timestamp``: must render to epoch milliseconds (an integer from 0 to 2**62); anything else
  means "now" (as EMQX).
- ``topic``: every placeholder must have a value; otherwise the record fails with
  ``failed.render``. The rendered name must be a valid Kafka topic name (1-249 characters of
  ``a-z A-Z 0-9 . _ -``, not ``.`` or ``..``); otherwise ``failed.invalid_topic`` (the action then
  uses ``fallback_topic`` when set), without asking Kafka.
- headers: ``kafka_headers`` (one placeholder: a map, a list of ``{key, value}``, or their JSON)
  come first, then ``kafka_ext_headers``; an entry whose key or value is missing is skipped. With
  ``kafka_header_value_encode_mode: none`` only text values are kept (EMQX drops the others);
  ``json`` JSON-encodes every value (one that cannot be encoded is skipped).
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections.abc import Mapping
from typing import Any

import orjson

from mqferry import MISSING, DeliveryError, Template, TemplateError, to_json, to_text
from mqferry_kafka_producer.config import KafkaProducerParameters
from mqferry_kafka_producer.topics import topic_problem

Header = tuple[str, bytes]

#: The timestamps a record may carry. Kafka's are 64-bit and not negative (-1 means none); the
#: differences between the timestamps of one batch must fit 64 bits too, hence 2**62.
_TS_MIN, _TS_MAX = 0, 2**62 - 1


class RecordRenderer:
    """Renders rule outputs with one action's templates (parsed once)."""

    __slots__ = ("_check_topic", "_ext", "_headers", "_json_headers", "key", "replaced",
                 "skipped_headers", "timestamp", "topic", "value")

    def __init__(self, params: KafkaProducerParameters) -> None:
        self.topic = Template(params.topic)
        # a literal topic name was checked with the configuration
        self._check_topic = not self.topic.is_literal
        self.key = Template(params.message.key)
        self.value = Template(params.message.value)
        self.timestamp = Template(params.message.timestamp)
        self._headers = Template(params.kafka_headers) if params.kafka_headers else None
        self._ext = [
            (Template(h.kafka_ext_header_key), Template(h.kafka_ext_header_value))
            for h in params.kafka_ext_headers
        ]
        self._json_headers = params.kafka_header_value_encode_mode == "json"
        #: values that were not UTF-8 and were written into JSON with U+FFFD since the caller
        #: last read and zeroed this (see :func:`mqferry._templates.to_json`)
        self.replaced = 0
        #: the headers left out since :meth:`begin`, as ``(key, why)``: their values could not
        #: be JSON-encoded (``json`` mode)
        self.skipped_headers: list[tuple[str, str]] = []

    def begin(self) -> None:
        """Clear :attr:`replaced` and :attr:`skipped_headers` before rendering one output."""
        self.replaced = 0
        if self.skipped_headers:
            self.skipped_headers = []

    def _replaced(self) -> None:
        self.replaced += 1

    def render_topic(self, output: Mapping[str, Any]) -> str:
        """The topic for ``output``.

        Raises:
            DeliveryError: ``failed.render`` when a placeholder has no value,
                ``failed.invalid_topic`` when the name is not a valid Kafka topic name.
        """
        try:
            topic = self.topic.render_strict(output)
        except TemplateError as exc:
            raise DeliveryError("failed.render", f"topic {self.topic.text!r}: {exc}") from None
        problem = topic_problem(topic) if self._check_topic else None
        if problem is not None:
            raise DeliveryError("failed.invalid_topic", f"topic {self.topic.text!r}: {problem}")
        return topic

    def _bytes(self, template: Template, output: Mapping[str, Any]) -> bytes | None:
        if template.is_single_placeholder:
            return template.value_bytes(output, on_replaced=self._replaced)
        return template.render_bytes(output, on_replaced=self._replaced)

    def render_key(self, output: Mapping[str, Any]) -> bytes | None:
        """The record key (``None`` is a Kafka null key)."""
        return self._bytes(self.key, output)

    def render_value(self, output: Mapping[str, Any]) -> bytes | None:
        """The record value (``None`` is a Kafka null value)."""
        return self._bytes(self.value, output)

    def render_timestamp(self, output: Mapping[str, Any]) -> int:
        """Epoch milliseconds: the rendered value when it is an integer Kafka can hold, else now.

        A negative or huge value (past 2**62) could not enter a batch (and would fail the records
        batched with it), so it counts as no timestamp, as text does. One the broker refuses
        (further in the future than its ``log.message.timestamp.after.max.ms``) fails its
        record alone with ``failed.refused``.
        """
        raw = self.timestamp.value(output)
        if raw is MISSING:  # the common case: EMQX's ${.timestamp} of an output without one
            return time.time_ns() // 1_000_000
        ts: int | None = None
        if isinstance(raw, int) and not isinstance(raw, bool):
            ts = int(raw)
        elif isinstance(raw, str | float):
            with contextlib.suppress(ValueError, OverflowError):  # text, NaN, infinity
                ts = int(raw)
        if ts is not None and _TS_MIN <= ts <= _TS_MAX:
            return ts
        return time.time_ns() // 1_000_000

    def render_headers(self, output: Mapping[str, Any]) -> list[Header]:
        """The record headers.

        Raises:
            DeliveryError: ``failed.bad_headers`` when ``kafka_headers`` is not a map or list.
        """
        if self._headers is None and not self._ext:
            return []  # the default: no header settings, nothing to walk per record
        pairs: list[tuple[str, Any]] = []
        if self._headers is not None:
            raw = self._headers.value(output)
            if raw is not MISSING and raw is not None:
                pairs.extend(_header_pairs(raw, self._headers.text))
        for key_t, value_t in self._ext:
            try:
                key = key_t.render_strict(output)
            except TemplateError:
                continue
            value = value_t.value(output) if value_t.is_single_placeholder else value_t.text
            if value is MISSING or value is None:
                continue
            pairs.append((key, value))
        return [h for h in (self._encode(k, v) for k, v in pairs) if h is not None]

    def _encode(self, key: str, value: Any) -> Header | None:
        if self._json_headers:
            try:
                return key, to_json(value, self._replaced)
            except (TypeError, TemplateError) as exc:  # an int past 64 bits, too deep
                self.skipped_headers.append((key, str(exc)[:200]))
                return None
        if isinstance(value, str):
            return key, value.encode()
        if isinstance(value, bytes):
            return key, value
        return None


def text_or_base64(value: bytes | None) -> str | None:
    """``value`` as text for the API: UTF-8, else ``base64:`` and its base64."""
    if value is None:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()


def record_preview(topic: str, partition: int | None, *, strategy: str, key: bytes | None,
                   value: bytes | None, headers: list[Header], timestamp: int) -> dict[str, Any]:
    """What the API's preview shows of a record."""
    return {
        "topic": topic,
        "partition": partition,
        "partition_strategy": strategy,
        "key": text_or_base64(key),
        "value": text_or_base64(value),
        "headers": [{"key": k, "value": text_or_base64(v)} for k, v in headers],
        "timestamp": timestamp,
    }


def _header_pairs(raw: Any, source: str) -> list[tuple[str, Any]]:
    if isinstance(raw, str | bytes):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise DeliveryError("failed.bad_headers",
                                f"{source} is not a map or JSON object") from None
    if isinstance(raw, Mapping):
        out: list[tuple[str, Any]] = []
        for k, v in raw.items():
            if isinstance(v, Mapping) and k == "User-Property":
                # MQTT 5 User-Properties become individual headers.
                out.extend((to_text(uk), uv) for uk, uv in v.items())
            else:
                out.append((to_text(k), v))
        return out
    if isinstance(raw, list):
        out = []
        for item in raw:
            if isinstance(item, list):
                out.extend(_header_pairs(item, source))
            elif isinstance(item, Mapping) and "key" in item and "value" in item:
                out.append((to_text(item["key"]), item["value"]))
            else:
                raise DeliveryError("failed.bad_headers", f"{source}: bad header {item!r}")
        return out
    raise DeliveryError("failed.bad_headers", f"{source} is not a map or a list")

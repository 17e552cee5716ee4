"""The template message of a Kafka record, exactly as EMQX documents it."""

from __future__ import annotations

import base64
from typing import Any

from aiokafka.structs import ConsumerRecord


def _decode(raw: bytes | None, mode: str) -> str:
    if raw is None:
        return ""  # a null key or value arrives as an empty string, as in EMQX
    if mode == "base64":
        return base64.b64encode(raw).decode()
    return raw.decode("utf-8", "replace")


def record_message(record: ConsumerRecord[bytes, bytes], key_mode: str,
                   value_mode: str) -> dict[str, Any]:
    """``{headers, key, offset, topic, ts, ts_type, value}`` of one record.

    Duplicate header keys collapse, the last one winning; header values are text.
    """
    return {
        "headers": {k: v.decode("utf-8", "replace") for k, v in record.headers or ()},
        "key": _decode(record.key, key_mode),
        "offset": record.offset,
        "topic": record.topic,
        "ts": record.timestamp,
        "ts_type": "create" if record.timestamp_type == 0 else "append",
        "value": _decode(record.value, value_mode),
    }

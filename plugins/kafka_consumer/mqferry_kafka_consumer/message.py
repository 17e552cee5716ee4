"""The template message of a Kafka record, exactly as EMQX documents it."""

from __future__ import annotations

import base64
from typing import Any

from aiokafka.structs import ConsumerRecord

from mqferry import MqferryError

#: The columns of the rule event of a record: :func:`record_message` plus what the source and the
#: runtime add.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("value", "the record's value (text, or base64 with value_encoding_mode: base64)"),
    ("key", "the record's key (\"\" when null)"),
    ("topic", "the Kafka topic"),
    ("offset", "the record's offset in its partition"),
    ("headers", "the record's headers, as a map"),
    ("ts", "the record's timestamp, epoch milliseconds"),
    ("ts_type", "create or append: what the timestamp is"),
    ("timestamp", "when mqferry read the record, epoch milliseconds"),
    ("event", "$bridges/kafka_consumer:<source name>"),
    ("node", "the mqferry node"),
)


class RecordDecodeError(MqferryError, ValueError):
    """A key or value is not valid UTF-8 under encoding mode ``none``."""


def _decode(raw: bytes | None, mode: str, what: str) -> str:
    if raw is None:
        return ""  # a null key or value arrives as an empty string, as in EMQX
    if mode == "base64":
        return base64.b64encode(raw).decode()
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise RecordDecodeError(
            f"the {what} is not valid UTF-8 ({exc.reason} at byte {exc.start}); "
            f"set {what}_encoding_mode: base64") from None


def record_message(record: ConsumerRecord[bytes, bytes], key_mode: str,
                   value_mode: str) -> dict[str, Any]:
    """``{headers, key, offset, topic, ts, ts_type, value}`` of one record.

    Duplicate header keys collapse, the last one winning; header values are text (bytes that
    are not UTF-8 become U+FFFD). A null key or value is ``""``.

    Raises:
        RecordDecodeError: the key or value is not UTF-8 and its mode is ``none``.
    """
    headers = record.headers
    return {
        "headers": {k: "" if v is None else v.decode("utf-8", "replace") for k, v in headers}
        if headers else {},
        "key": _decode(record.key, key_mode, "key"),
        "offset": record.offset,
        "topic": record.topic,
        "ts": record.timestamp,
        "ts_type": "create" if record.timestamp_type == 0 else "append",
        "value": _decode(record.value, value_mode, "value"),
    }

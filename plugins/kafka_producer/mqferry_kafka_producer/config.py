"""Settings of a ``kafka_producer`` action, with EMQX's names and defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mqferry.config import ActionConfigBase, ByteSize, Duration, Strict
from mqferry.errors import TemplateError
from mqferry.templates import Template


def _check_template(v: str) -> str:
    try:
        Template(v)
    except TemplateError as exc:
        raise ValueError(str(exc)) from None
    return v


class MessageTemplate(Strict):
    """How a Kafka record is rendered from a rule output.

    Missing values: ``key`` and ``value`` render missing placeholders as the empty string, and a
    key that renders empty is sent as a null key; ``timestamp`` must render to epoch
    milliseconds, otherwise the current time is used (as EMQX).
    """

    key: str = "${.clientid}"
    value: str = "${.}"
    timestamp: str = "${.timestamp}"

    @field_validator("key", "value", "timestamp")
    @classmethod
    def _template(cls, v: str) -> str:
        return _check_template(v)


class ExtHeader(Strict):
    """An extra header: a key template and a value (one placeholder, or plain text)."""

    kafka_ext_header_key: str
    kafka_ext_header_value: str


class KafkaProducerParameters(Strict):
    """The ``parameters`` of a ``kafka_producer`` action."""

    topic: str
    message: MessageTemplate = Field(default_factory=MessageTemplate)
    kafka_headers: str | None = None
    kafka_ext_headers: list[ExtHeader] = Field(default_factory=list)
    kafka_header_value_encode_mode: Literal["none", "json"] = "none"
    partition_strategy: Literal["random", "key_dispatch", "round_robin"] = "random"
    compression: Literal["no_compression", "none", "gzip", "snappy", "lz4", "zstd"] = (
        "no_compression"
    )
    max_batch_bytes: ByteSize = 896 * 1024
    max_linger_time: Duration = 0.0
    required_acks: Literal["all_isr", "leader_only", "none"] = "all_isr"

    @field_validator("topic")
    @classmethod
    def _topic(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a Kafka topic name is required")
        return _check_template(v)

    @field_validator("kafka_headers")
    @classmethod
    def _headers(cls, v: str | None) -> str | None:
        if v is not None and not Template(_check_template(v)).is_single_placeholder:
            raise ValueError("must be a single placeholder like ${pub_props}")
        return v

    @model_validator(mode="after")
    def _key_dispatch_needs_key(self) -> KafkaProducerParameters:
        if self.partition_strategy == "key_dispatch" and not self.message.key.strip():
            raise ValueError("message key cannot be empty when key_dispatch strategy is used")
        return self


class KafkaProducerActionConfig(ActionConfigBase):
    """A ``kafka_producer`` action."""

    parameters: KafkaProducerParameters

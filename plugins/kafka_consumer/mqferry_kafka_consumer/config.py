"""Settings of a ``kafka_consumer`` source, with EMQX's names and defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mqferry.config import ByteSize, Duration, DurationS, SourceConfigBase, Strict
from mqferry.errors import TemplateError
from mqferry.templates import Template


def _template(v: str) -> str:
    try:
        Template(v)
    except TemplateError as exc:
        raise ValueError(str(exc)) from None
    return v


class TopicMapping(Strict):
    """One Kafka topic published to MQTT (EMQX 5.x ``topic_mapping``).

    ``mqtt_topic`` and ``payload_template`` are templates over the record
    ``{headers, key, offset, topic, ts, ts_type, value}``; absent values render as ``""``.
    """

    kafka_topic: str
    mqtt_topic: str
    qos: Literal[0, 1, 2] = 0
    payload_template: str = "${.}"

    @field_validator("mqtt_topic", "payload_template")
    @classmethod
    def _check(cls, v: str) -> str:
        return _template(v)


class KafkaConsumerParameters(Strict):
    """The ``parameters`` of a ``kafka_consumer`` source.

    ``topic`` feeds rules ``FROM "$bridges/kafka_consumer:<name>"``; ``topic_mapping`` publishes
    straight to MQTT. Either or both may be set.
    """

    topic: str | None = None
    topic_mapping: list[TopicMapping] = Field(default_factory=list)
    group_id: str | None = None
    key_encoding_mode: Literal["none", "base64"] = "none"
    value_encoding_mode: Literal["none", "base64"] = "none"
    offset_reset_policy: Literal["latest", "earliest"] = "latest"
    offset_commit_interval_seconds: DurationS = 5.0
    max_batch_bytes: ByteSize = 896 * 1024
    max_wait_time: Duration = 1.0

    @model_validator(mode="after")
    def _topics(self) -> KafkaConsumerParameters:
        if not self.topic and not self.topic_mapping:
            raise ValueError("set 'topic' (to feed rules) or at least one 'topic_mapping' entry")
        seen: set[str] = set()
        for m in self.topic_mapping:
            if m.kafka_topic in seen:
                raise ValueError(
                    f"Kafka topic {m.kafka_topic!r} appears in more than one topic_mapping entry")
            seen.add(m.kafka_topic)
        return self

    def kafka_topics(self) -> list[str]:
        """Every Kafka topic consumed."""
        topics = [m.kafka_topic for m in self.topic_mapping]
        if self.topic and self.topic not in topics:
            topics.append(self.topic)
        return topics


class KafkaConsumerSourceConfig(SourceConfigBase):
    """A ``kafka_consumer`` source."""

    parameters: KafkaConsumerParameters

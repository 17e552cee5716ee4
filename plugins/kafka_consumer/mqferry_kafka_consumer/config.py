"""Settings of a ``kafka_consumer`` source, with EMQX's names and defaults.

Past EMQX: ``topic_pattern`` (a regex subscription), ``max_inflight`` (back-pressure) and
``dead_letter_topic``.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mqferry import (
    ByteSize,
    Duration,
    DurationS,
    SourceConfigBase,
    Strict,
    Template,
    check_template,
    mqtt_topic_problem,
)

#: Kafka topic names: letters, digits, ``.``, ``_``, ``-``; at most 249 characters.
_KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")


def check_mqtt_topic(topic: str) -> str | None:
    """Why ``topic`` cannot be published to, or ``None`` when it can."""
    why = mqtt_topic_problem(topic)
    return None if why is None else f"the MQTT topic {topic[:200]!r} is invalid: {why}"


def _kafka_topic(v: str) -> str:
    if not _KAFKA_TOPIC.fullmatch(v) or v in (".", ".."):
        raise ValueError(f"invalid Kafka topic name {v!r}: use letters, digits, '.', '_' and "
                         "'-' (at most 249)")
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

    @field_validator("kafka_topic")
    @classmethod
    def _kafka(cls, v: str) -> str:
        return _kafka_topic(v)

    @field_validator("mqtt_topic")
    @classmethod
    def _mqtt(cls, v: str) -> str:
        check_template(v)
        if Template(v).is_literal and (why := check_mqtt_topic(v)):
            raise ValueError(why)
        return v

    @field_validator("payload_template")
    @classmethod
    def _payload(cls, v: str) -> str:
        return check_template(v)


class KafkaConsumerParameters(Strict):
    """The ``parameters`` of a ``kafka_consumer`` source.

    Every record of ``topic``, of the topics matching ``topic_pattern`` and of the mapped topics
    feeds rules ``FROM "$bridges/kafka_consumer:<name>"``; ``topic_mapping`` also publishes the
    mapped topics straight to MQTT. At least one of the three must be set.
    """

    topic: str | None = None
    #: A Python regular expression; every Kafka topic whose whole name matches is consumed.
    topic_pattern: str | None = None
    #: How often the topic list is refreshed, so new topics matching ``topic_pattern``, and
    #: configured topics created after the start, are found.
    topic_pattern_refresh_interval: Duration = 10.0
    topic_mapping: list[TopicMapping] = Field(default_factory=list)
    group_id: str | None = None
    key_encoding_mode: Literal["none", "base64"] = "none"
    value_encoding_mode: Literal["none", "base64"] = "none"
    offset_reset_policy: Literal["latest", "earliest"] = "latest"
    offset_commit_interval_seconds: DurationS = 5.0
    max_batch_bytes: ByteSize = 896 * 1024
    max_wait_time: Duration = 1.0
    #: Records handed to MQTT and rules and not yet committed (unsettled, or settled since the
    #: last commit); at this many, consumption pauses. After a crash the group reads at most
    #: this many again (their offsets were not committed).
    max_inflight: int = Field(default=10_000, ge=1)
    #: A Kafka topic (same cluster) for records that cannot be processed (decoded, rendered,
    #: published or run through the rules), with the reason in the ``mqferry-error`` header.
    dead_letter_topic: str | None = None
    #: How long the group coordinator waits for this consumer's heartbeat before it gives its
    #: partitions to the group's other members (a crashed node's share moves after this long).
    #: Kafka accepts 6s-30min unless its ``group.min/max.session.timeout.ms`` say otherwise.
    session_timeout: Duration = Field(default=10.0, gt=0)
    #: How often the consumer tells the coordinator it is alive; well below ``session_timeout``.
    heartbeat_interval: Duration = Field(default=3.0, gt=0)

    @field_validator("topic", "dead_letter_topic")
    @classmethod
    def _names(cls, v: str | None) -> str | None:
        return None if v is None else _kafka_topic(v)

    @field_validator("topic_pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
        return v

    @model_validator(mode="after")
    def _topics(self) -> KafkaConsumerParameters:
        if self.heartbeat_interval >= self.session_timeout:
            raise ValueError(
                f"heartbeat_interval ({self.heartbeat_interval:g}s) must be shorter than "
                f"session_timeout ({self.session_timeout:g}s), a third of it or less: the "
                "coordinator would declare the consumer dead between two heartbeats")
        if not self.topic and not self.topic_mapping and not self.topic_pattern:
            raise ValueError("set 'topic' or 'topic_pattern' (to feed rules) or at least one "
                             "'topic_mapping' entry")
        seen: dict[str, int] = {}
        for i, m in enumerate(self.topic_mapping):
            if m.kafka_topic in seen:
                raise ValueError(
                    f"topic_mapping[{i}]: Kafka topic {m.kafka_topic!r} appears in more than one "
                    f"topic_mapping entry (also topic_mapping[{seen[m.kafka_topic]}]); a Kafka "
                    "topic may be in one mapping only")
            seen[m.kafka_topic] = i
        dlq = self.dead_letter_topic
        if dlq is not None and (dlq in self.kafka_topics() or self.matches_pattern(dlq)):
            raise ValueError(f"dead_letter_topic {dlq!r} is one of the consumed topics")
        return self

    def kafka_topics(self) -> list[str]:
        """The Kafka topics consumed by name (``topic_pattern`` adds more)."""
        topics = [m.kafka_topic for m in self.topic_mapping]
        if self.topic and self.topic not in topics:
            topics.append(self.topic)
        return topics

    def matches_pattern(self, topic: str) -> bool:
        """Whether ``topic`` matches ``topic_pattern`` (as a whole)."""
        pattern = self.topic_pattern
        return pattern is not None and re.fullmatch(pattern, topic) is not None

    def subscription_pattern(self) -> str | None:
        """One regex for every consumed topic, when ``topic_pattern`` is set; else ``None``."""
        if self.topic_pattern is None:
            return None
        alternatives = [f"(?:{self.topic_pattern})", *(re.escape(t) for t in self.kafka_topics())]
        return "^(?:" + "|".join(alternatives) + ")$"


class KafkaConsumerSourceConfig(SourceConfigBase):
    """A ``kafka_consumer`` source."""

    parameters: KafkaConsumerParameters

"""Settings of a ``kafka_producer`` action, with EMQX's names and defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from mqferry import (
    ActionConfigBase,
    ByteSize,
    Duration,
    DurationS,
    Strict,
    Template,
    check_template,
)
from mqferry_kafka_producer.topics import topic_problem


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
        return check_template(v)


class ExtHeader(Strict):
    """An extra header: a key template and a value (one placeholder, or plain text)."""

    kafka_ext_header_key: str
    kafka_ext_header_value: str


class BufferOptions(Strict):
    """Where records wait for Kafka, and what happens when the buffer is full.

    ``memory``: records are secured when Kafka acknowledges them (their MQTT messages are
    acknowledged then). ``disk``: records are secured once fsync'd to segment files under the
    data directory, and replayed after a restart or ``kill -9``. ``hybrid``: in memory until the
    records in memory exceed ``segment_bytes``, then on disk (secured and replayed like ``disk``).
    ``per_partition_limit`` bounds the bytes buffered for each Kafka partition (queued and in
    flight). When a partition is full, ``overflow: block`` (the default) stops securing new
    records, so their MQTT acknowledgements wait and the broker holds the rest; ``drop_oldest``
    (EMQX's behaviour) drops the partition's oldest queued records, counted as
    ``dropped.queue_full``.
    ``memory_overload_protection`` drops the oldest in-memory records while the machine has
    less than 10% memory available (off by default: it loses messages).
    """

    mode: Literal["memory", "disk", "hybrid"] = "memory"
    per_partition_limit: ByteSize = 256 * 1024**2
    segment_bytes: ByteSize = 10 * 1024**2
    memory_overload_protection: bool = False
    overflow: Literal["block", "drop_oldest"] = "block"


class KafkaProducerParameters(Strict):
    """The ``parameters`` of a ``kafka_producer`` action (EMQX's names and defaults)."""

    topic: str
    #: where records go whose topic does not exist (instead of failing them)
    fallback_topic: str | None = None
    message: MessageTemplate = Field(default_factory=MessageTemplate)
    kafka_headers: str | None = None
    kafka_ext_headers: list[ExtHeader] = Field(default_factory=list)
    kafka_header_value_encode_mode: Literal["none", "json"] = "none"
    partition_strategy: Literal["random", "key_dispatch", "round_robin", "sticky"] = "random"
    partitions_limit: Literal["all_partitions"] | PositiveInt = "all_partitions"
    partition_count_refresh_interval: DurationS = 60.0
    compression: Literal["no_compression", "none", "gzip", "snappy", "lz4", "zstd"] = (
        "no_compression"
    )
    max_batch_bytes: ByteSize = 896 * 1024
    max_linger_time: Duration = 0.0
    max_linger_bytes: ByteSize = 10 * 1024**2
    #: with ``max_linger_time: 0``, records that arrive within this time of the action's last
    #: produce request wait until it has passed and leave together; a record arriving later
    #: goes at once. Caps the produce requests of a steady trickle (one per record otherwise)
    #: at the cost of at most this much latency; 0 turns it off. 4 ms: at 2000 msg/s less CPU
    #: than a paho + librdkafka bridge (whose linger is 5 ms) with p99 under 20 ms
    adaptive_linger_time: Duration = 0.004
    #: batches in flight per partition; above 1, retries may reorder records
    max_inflight: PositiveInt = 10
    required_acks: Literal["all_isr", "leader_only", "none"] = "all_isr"
    #: ``sync``: with ``mqtt.delivery: at_most_once`` a PUBACK waits for Kafka's answer, up to
    #: ``sync_query_timeout`` (at-least-once PUBACKs always wait until the record is secured);
    #: records acknowledged after the timeout count as ``late_reply``
    query_mode: Literal["async", "sync"] = "async"
    sync_query_timeout: Duration = 5.0
    #: drop records Kafka has not acknowledged after this long *while connected* (time in an
    #: outage does not count, so an outage never discards the buffer)
    max_batch_age: Duration = 3600.0
    #: give up on a record after this many Kafka error responses (connection losses not counted)
    max_retries: NonNegativeInt = 10
    buffer: BufferOptions = Field(default_factory=BufferOptions)

    @field_validator("topic", "fallback_topic")
    @classmethod
    def _topic(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.strip():
            raise ValueError("a Kafka topic name is required")
        check_template(v)
        if Template(v).is_literal:
            problem = topic_problem(v)
            if problem is not None:
                raise ValueError(problem)
        return v

    @field_validator("fallback_topic")
    @classmethod
    def _fallback_literal(cls, v: str | None) -> str | None:
        if v is not None and not Template(v).is_literal:
            raise ValueError("must be a topic name, without placeholders")
        return v

    @field_validator("kafka_headers")
    @classmethod
    def _headers(cls, v: str | None) -> str | None:
        if v is not None and not Template(check_template(v)).is_single_placeholder:
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

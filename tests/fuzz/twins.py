"""A whole mqferry App on in-memory twins, for the fuzz properties.

The app is built from a real configuration with the real plugins: rules are compiled by the
config loader, ``kafka_producer`` and ``republish`` actions and the ``kafka_consumer`` source are
the real components. Only the edges are twins:

* MQTT in: each message goes through the MQTT connector's message entry (the one its socket
  reader calls), so tickets are opened in the connector's real ack window; the acks the window
  releases are recorded instead of sent.
* MQTT out: the runtime context publishes to an :class:`~mqferry.testing.InMemoryMqtt`.
* Kafka out: :class:`KafkaTwin` plays the broker behind each ``kafka_producer`` action's buffer:
  it takes what the action queued and acknowledges it, as the flush task does when Kafka answers.
* Kafka in: records are handed to the source's batch handler, as its consume loop does.

Every access to a component's insides is in this module, so a change of those insides is fixed
in one place.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqferry._config import validate_config
from mqferry._config.loader import AppConfig
from mqferry._mqtt.acks import AckWindow
from mqferry._mqtt.codec import InMessage
from mqferry._plugins import PluginSet, load_plugins
from mqferry._runtime import App
from mqferry._types import HealthStatus, Status
from mqferry.testing import InMemoryMqtt

#: The Kafka topics the fuzz source consumes: one mapping renders ``${value.data}`` (a record
#: field that may be hostile), the other the whole message.
SOURCE_TOPIC = "fuzz-in"
SOURCE_TOPIC_WHOLE = "fuzz-in-whole"


@functools.cache
def plugins() -> PluginSet:
    """The installed plugins, loaded once per test session."""
    return load_plugins()


def base_config(rules: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The fuzz app's configuration: every rule shape of issue #12 against real actions.

    ``rules`` replaces the default rules (the actions stay).
    """
    default_rules = {
        # Issue #12, case 1: a rule output holding a hostile payload field, rendered whole.
        "deep": {"sql": 'SELECT \'deep\' as kt, payload.d as d FROM "#"',
                 "actions": ["kafka_producer:whole"]},
        "whole": {"sql": 'SELECT * FROM "#"', "actions": ["kafka_producer:whole"]},
        "fields": {"sql": "SELECT payload.a.b as ab, payload.n * 2 as n2, payload.k as k, "
                          "payload.h as h, json_decode(payload) as j, clientid, topic "
                          'FROM "#"',
                   "actions": ["kafka_producer:fields"]},
        "filtered": {"sql": 'SELECT payload.n as n FROM "t/#" WHERE payload.n > 0 and '
                            "regex_match(str(payload.k), '^k')",
                     "actions": ["kafka_producer:fields"]},
        "each": {"sql": 'FOREACH payload.xs as x FROM "#"', "actions": ["kafka_producer:fields"]},
        "echo": {"sql": 'SELECT * FROM "#"', "actions": ["republish:echo"]},
        "records": {"sql": 'SELECT value.data as d, key, headers FROM '
                           '"$bridges/kafka_consumer:src"',
                    "actions": ["kafka_producer:whole"]},
    }
    kafka = {"bootstrap_hosts": "127.0.0.1:1"}
    return {
        "connectors": {"kafka_producer": {"k": kafka}, "kafka_consumer": {"kc": kafka}},
        "actions": {
            "kafka_producer": {
                "whole": {"connector": "k", "parameters": {
                    "topic": "fuzz-whole", "message": {"key": "${clientid}", "value": "${.}"},
                    "kafka_headers": "${pub_props.User-Property}"}},
                # Templated topic, key, value and headers: every field may be hostile.
                "fields": {"connector": "k", "parameters": {
                    "topic": "fuzz-${topic}", "message": {"key": "${k}", "value": "${.}"},
                    "kafka_ext_headers": [{"kafka_ext_header_key": "h-${clientid}",
                                           "kafka_ext_header_value": "${h}"}]}},
            },
            "republish": {"echo": {"parameters": {
                "topic": "echo/${topic}", "payload": "${payload}", "qos": 1,
                "user_properties": "${pub_props.User-Property}",
                "mqtt_properties": {"Content-Type": "${pub_props.Content-Type}"}}}},
        },
        "sources": {"kafka_consumer": {"src": {"connector": "kc", "parameters": {
            "topic_mapping": [
                # Issue #12, case 2: a payload template reaching into the record value.
                {"kafka_topic": SOURCE_TOPIC, "mqtt_topic": "from-kafka/${key}", "qos": 1,
                 "payload_template": "${value.data}"},
                {"kafka_topic": SOURCE_TOPIC_WHOLE, "mqtt_topic": "from-kafka-whole", "qos": 1,
                 "payload_template": "${.}"},
            ]}}}},
        "rules": dict(default_rules if rules is None else rules),
    }


def compile_config(data: Mapping[str, Any]) -> AppConfig:
    """Validate ``data`` with the installed plugins (raises ``ConfigError``)."""
    p = plugins()
    return validate_config(data, p.registries(), p.function_table())


@dataclass
class KafkaTwin:
    """The Kafka broker behind ``kafka_producer`` actions: acknowledges what they queued.

    Attributes:
        records: ``(action id, topic, key, value, headers)`` of every acknowledged record.
    """

    records: list[tuple[str, str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = (
        field(default_factory=list))

    def drain(self, action: Any) -> int:
        """Acknowledge everything ``action`` has queued; how many records that was."""
        buffer, n = action.buffer, 0
        while buffer.has_ready():
            for key in [k for k, q in buffer.ready.items() if q]:
                for rec in buffer.take(key):
                    buffer.done(rec)
                    self.records.append((action.id, rec.topic, rec.key, rec.value,
                                         list(rec.headers)))
                    if rec.delivery is not None:
                        rec.delivery.secured()
                        rec.delivery = None
                    n += 1
        return n


class Harness:
    """One fuzz app on twins. Build it with :func:`harness` inside a running event loop.

    Attributes:
        app: the App.
        mqtt_out: what the app published to MQTT.
        kafka: the Kafka twin of its ``kafka_producer`` actions.
        acked: the packet ids whose acks the ack window released, in order.
        loop_errors: what reached the event loop's exception handler.
    """

    def __init__(self, config: AppConfig, data_dir: Path) -> None:
        self.mqtt_out = InMemoryMqtt()
        self.app = App(config, data_dir=data_dir, publisher=self.mqtt_out)
        self.kafka = KafkaTwin()
        self.acked: list[int] = []
        self.app.mqtt.acks = AckWindow(self._acks)
        self.loop_errors: list[dict[str, Any]] = []
        self._mids = iter(range(1, 1 << 30))
        #: the packet ids of the QoS 1/2 messages handed to the app, in order
        self.expected_acks: list[int] = []
        self._offsets: dict[str, int] = {}

    def _acks(self, acks: list[tuple[int, int]]) -> None:
        self.acked.extend(mid for mid, _ in acks)

    async def start(self) -> None:
        """Start what needs no broker and take input, as ``App.start`` does.

        ``kafka_producer`` actions are not started (the twin plays their flush task and marks
        their session connected, as an answer from Kafka does); the source is not started (the
        twin hands it records).
        """
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: self.loop_errors.append(ctx))
        for action in self.app.actions.values():
            if action.id.startswith("kafka_producer:"):
                action.session.set_connected(True)
            else:
                await action.start()
        self.app.inbound.accepting = True

    async def stop(self) -> None:
        """Stop taking input and stop the started actions."""
        self.app.inbound.accepting = False
        for action in self.app.actions.values():
            if not action.id.startswith("kafka_producer:"):
                await action.stop()

    # -- MQTT in -----------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, qos: int = 1,
                properties: Properties | None = None, raw_topic: bytes = b"") -> int:
        """Hand the app one incoming MQTT message, as the connector's reader does; its mid."""
        mid = next(self._mids) if qos else 0
        if qos:
            self.expected_acks.append(mid)
        msg = InMessage(topic, payload, qos=qos, retain=False, dup=False, mid=mid,
                        properties=properties, raw_topic=raw_topic)
        self.app.mqtt._on_message(msg)
        return mid

    @property
    def unacked(self) -> int:
        """Messages whose ack the window still holds."""
        return len(self.app.mqtt.acks)

    # -- Kafka in ----------------------------------------------------------------------------

    def consume(self, topic: str, values: Iterable[tuple[bytes | None, bytes | None,
                                                         list[tuple[str, bytes]]]]) -> int:
        """Hand the source a batch of ``(key, value, headers)`` records on partition 0 of
        ``topic``, as its consume loop does; the offset after the last one."""
        offset = self._offsets.get(topic, 0)
        records = []
        for key, value, headers in values:
            records.append(ConsumerRecord(
                topic=topic, partition=0, offset=offset, timestamp=1_700_000_000_000,
                timestamp_type=0, key=key, value=value, checksum=None,
                serialized_key_size=len(key or b""), serialized_value_size=len(value or b""),
                headers=headers))
            offset += 1
        self._offsets[topic] = offset
        self.source.handler.handle_batches({TopicPartition(topic, 0): records})
        return offset

    @property
    def source(self) -> Any:
        """The ``kafka_consumer:src`` source."""
        return self.app.sources["kafka_consumer:src"]

    def committable(self, topic: str) -> int | None:
        """The offset the source may commit for partition 0 of ``topic``."""
        return self.source.tracker.committable().get(TopicPartition(topic, 0))

    # -- settling ----------------------------------------------------------------------------

    async def settle(self) -> None:
        """Let publishes and dispatches run, and the Kafka twin acknowledge, until quiet."""
        # Rules evaluated off the loop (jq, regular expressions the backtracking engine may
        # run) take real time: wait for their queues first.
        for _ in range(6000):  # 30 s at most
            if not any(r.pending for r in self.app.rules.values()):
                break
            await asyncio.sleep(0.005)
        for _ in range(50):
            for _ in range(5):
                await asyncio.sleep(0)
            drained = sum(self.kafka.drain(a) for a in self.app.actions.values()
                          if a.id.startswith("kafka_producer:"))
            # republish's "inflight" gauge: its publishes still under way
            if not drained and not any(a.metrics.snapshot().get("inflight") for a in
                                       self.app.actions.values()
                                       if not a.id.startswith("kafka_producer:")):
                return

    async def health(self) -> dict[str, HealthStatus]:
        """The health of every component (the MQTT session is not started here)."""
        status = await self.app.status()
        status.pop("mqtt", None)
        return status


def connected(status: Mapping[str, HealthStatus]) -> set[str]:
    """The ids of the components that report ``connected``."""
    return {cid for cid, h in status.items() if h.status is Status.CONNECTED}


def properties(user: Iterable[tuple[str, str]] = (), *, content_type: str | None = None,
               response_topic: str | None = None, correlation: bytes | None = None,
               format_indicator: int | None = None, expiry: int | None = None
               ) -> Properties | None:
    """MQTT 5 publish properties as paho decodes them from a packet."""
    props = Properties(PacketTypes.PUBLISH)
    pairs = list(user)
    if pairs:
        props.UserProperty = pairs
    for name, value in (("ContentType", content_type), ("ResponseTopic", response_topic),
                        ("CorrelationData", correlation),
                        ("PayloadFormatIndicator", format_indicator),
                        ("MessageExpiryInterval", expiry)):
        if value is not None:
            setattr(props, name, value)
    return props if pairs or any(v is not None for v in (
        content_type, response_topic, correlation, format_indicator, expiry)) else None


async def harness(tmp: Path, rules: Mapping[str, Any] | None = None) -> Harness:
    """A started :class:`Harness` over :func:`base_config` (``rules`` replaces its rules)."""
    h = Harness(compile_config(base_config(rules)), tmp)
    await h.start()
    return h

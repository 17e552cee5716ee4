"""One Kafka record into MQTT publishes and a rule event, each record failing alone.

:class:`RecordHandler` gives every record a slot in its partition's window
(:mod:`mqferry_kafka_consumer.offsets`), publishes it through the topic mapping of its Kafka
topic, hands its event to the rules, and watches each of those until it settles. A record that
cannot be processed is rejected: counted under its reason, logged (rate-limited), sent to the
dead-letter topic when one is set, and settled, so the partition moves on. That includes a
record whose event an action failed for good (the rules' ``dispatch`` fails with
``failed.action``, naming the rule, the action and its reason) and one a rule failed on, its
evaluation raising (``failed.rule``, naming the rule and the error).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeAlias

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from mqferry import (
    DeliveryError,
    Metrics,
    MqttUnavailable,
    RuntimeContext,
    Template,
    describe,
)
from mqferry_kafka_consumer.config import KafkaConsumerParameters, check_mqtt_topic
from mqferry_kafka_consumer.deadletter import DEAD_LETTER_FAILED, DeadLetter
from mqferry_kafka_consumer.failures import FailureLog
from mqferry_kafka_consumer.message import RecordDecodeError, record_message
from mqferry_kafka_consumer.offsets import OffsetTracker, Slot, Window

log = logging.getLogger(__name__)

Record: TypeAlias = "ConsumerRecord[Any, Any]"

#: The counter of a record that failed at each step of its processing.
_STEP_REASONS = {"decode": "failed.render", "mqtt_topic": "failed.render",
                 "payload_template": "failed.render", "publish": "failed.publish",
                 "rules": "failed.rules"}


class _Mapping:
    __slots__ = ("payload", "qos", "static_topic", "topic")

    def __init__(self, topic: str, qos: int, payload: str) -> None:
        self.topic = Template(topic)
        self.static_topic = topic if self.topic.is_literal else None
        self.qos = qos
        self.payload = Template(payload)


class RecordHandler:
    """Hands records to MQTT and rules, and accounts for each record's failures.

    Args:
        source_id: ``kafka_consumer:<name>``, for logs and the rule event's topic.
        params: the source's parameters.
        context: the runtime (MQTT publisher, rule dispatch).
        metrics: the source's metrics.
        dead_letter: where rejected records go, if anywhere.
    """

    def __init__(self, *, source_id: str, params: KafkaConsumerParameters,
                 context: RuntimeContext, metrics: Metrics,
                 dead_letter: DeadLetter | None) -> None:
        self.id = source_id
        self.params = params
        self.context = context
        #: a slot per record handed out; failed publishes and events come back to on_error
        self.tracker = OffsetTracker(on_error=self.on_error, low_water=params.max_inflight // 2,
                                     metrics=metrics)
        self.metrics = metrics
        self.dead_letter = dead_letter
        self.event_topic = f"$bridges/{source_id}"
        self.mappings = {m.kafka_topic: _Mapping(m.mqtt_topic, m.qos, m.payload_template)
                         for m in params.topic_mapping}
        #: The MQTT session was lost with records in flight: the source must consume again
        #: from each partition's first unsettled record once the session is back.
        self.rewind = False
        self._failures = FailureLog(log)

    def handle_batches(self, batches: dict[TopicPartition, list[Record]]) -> None:
        """Hand out the records of one fetch, partition by partition, in offset order.

        Stops at the first record that finds the MQTT session gone (:attr:`rewind` is then
        set): that record and the ones after it are consumed again.
        """
        tracker = self.tracker
        windows = []
        for tp, records in batches.items():
            w = tracker.window(tp)
            if w.next_offset is None:
                w.next_offset = records[0].offset  # where to go back to if the batch is cut
            windows.append((w, records))
        for w, records in windows:
            for record in records:
                if not self._handle(w, record):
                    tracker.opened()
                    return  # the MQTT session is gone: the source rewinds
        tracker.opened()

    def _handle(self, window: Window, record: Record) -> bool:
        """Hand one record to MQTT and rules; ``False`` when the MQTT session is gone.

        Whatever fails on the way fails this record alone: it is rejected (counted, logged,
        dead-lettered) and its slot sealed, so the partition moves on.
        """
        slot = window.open(record.offset, record)
        self.metrics.inc("received")
        step = "decode"
        try:
            msg = record_message(record, self.params.key_encoding_mode,
                                 self.params.value_encoding_mode)
            mapping = self.mappings.get(record.topic)
            if mapping is not None:
                step = "mqtt_topic"
                topic = mapping.static_topic
                if topic is None:
                    topic = mapping.topic.render(msg)
                    why = check_mqtt_topic(topic)
                    if why is not None:
                        self._reject(slot, record, "failed.render", f"mqtt_topic: {why}")
                        topic = None
                if topic is not None:
                    step = "payload_template"
                    payload = mapping.payload.render_bytes(msg)
                    step = "publish"
                    slot.hold()  # before: settled may be called before publish_with returns
                    try:
                        self.context.mqtt.publish_with(topic, payload, slot.settled,
                                                       qos=mapping.qos)
                    except MqttUnavailable:
                        slot.release()  # not published: settled is never called
                        self.rewind = True
                        return False  # left open: rewound and consumed again
                    except ValueError as exc:
                        slot.release()
                        self._reject(slot, record, "failed.render", f"mqtt_topic: {exc}")
                    except BaseException:
                        slot.release()
                        raise  # failed alone by the handler's catch-all, below
            step = "rules"
            msg["event"] = self.event_topic
            msg["timestamp"] = int(time.time() * 1000)
            nowait = self.context.dispatch_nowait
            slot.watch(nowait(msg) if nowait is not None
                       else asyncio.ensure_future(self.context.dispatch(msg)))
        except RecordDecodeError as exc:
            self._reject(slot, record, "failed.render", str(exc))
        except Exception as exc:  # a poison record must never stop the partition
            self._reject(slot, record, _STEP_REASONS[step], f"{step}: {describe(exc)}")
        slot.seal()
        return True

    def undecodable(self, tp: TopicPartition, offset: int, detail: str) -> None:
        """The record at ``offset`` of ``tp`` could not be decoded at all: rejected alone.

        Its slot settles at once (failed), so the partition's offsets move past it; the dead
        letter, if configured, carries its coordinates and the reason, with no key and an
        empty value (Kafka's record has one; aiokafka does not give it).
        """
        slot = self.tracker.window(tp).open(offset)
        self.metrics.inc("received")
        stub = ConsumerRecord(tp.topic, tp.partition, offset, -1, 0, None, b"", None, -1, 0,
                              ())
        self._reject(slot, stub, "failed.undecodable", detail)
        slot.seal()
        self.tracker.opened()

    def _reject(self, slot: Slot, record: Record, reason: str, detail: str) -> None:
        """A record that cannot be processed: counted, logged, dead-lettered if configured."""
        if not slot.failed:
            slot.failed = True
            self.metrics.inc("failed")
        self.metrics.inc(reason)
        self._failures.log(logging.WARNING, reason, "source %s: record %s/%d@%d: %s", self.id,
                           record.topic, record.partition, record.offset, detail)
        if self.dead_letter is not None:
            task = self.dead_letter.send(record, detail)
            task.add_done_callback(self._dead_lettered)
            slot.watch(task)

    def _dead_lettered(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is None:
            self.metrics.inc("dead_letter.success")

    def on_error(self, slot: Slot, exc: BaseException) -> bool:
        """A publish or rule event of ``slot`` failed: account for it (see ``ErrorHandler``).

        The MQTT session lost is not the record's failure: it is consumed again. A failure
        for good (a :class:`DeliveryError`: the broker refused the publish, an action failed an
        output of the record's event, ``failed.action``, or a rule failed on that event,
        ``failed.rule``) rejects the record as its own failures do: counted, logged,
        dead-lettered. A dead letter that failed is counted only, never dead-lettered again.
        """
        if isinstance(exc, MqttUnavailable):
            self.rewind = True
            return False  # left open: consumed again once the session is back
        record = slot.record
        if (isinstance(exc, DeliveryError) and record is not None
                and exc.reason != DEAD_LETTER_FAILED):
            self._reject(slot, record, exc.reason, exc.detail)
            return True  # settled once its dead letter is (the slot watches it)
        if not slot.failed:
            slot.failed = True
            self.metrics.inc("failed")
        tp = slot.window.tp
        if isinstance(exc, DeliveryError):
            self.metrics.inc(exc.reason)
            self._failures.log(logging.WARNING, exc.reason, "source %s: record %s/%d@%d: %s",
                               self.id, tp.topic, tp.partition, slot.offset, exc.detail)
        else:
            self._failures.log(logging.ERROR, "failed", "source %s: record %s/%d@%d failed: %s",
                               self.id, tp.topic, tp.partition, slot.offset, describe(exc))
        return True

"""The source's record path with an in-memory MQTT twin: what is published and committed."""


from aiokafka import TopicPartition

from mqferry import MqttUnavailable
from mqferry.testing import InMemoryMqtt

TP = TopicPartition("in", 0)


async def test_an_offset_is_committable_only_once_every_earlier_record_was_acked(
        record, source, settle):
    mqtt = InMemoryMqtt(hold_acks=True)
    src = source(mqtt)
    src.handler.handle_batches({TP: [record(10), record(11), record(12)]})
    await settle()
    assert [p.topic for p in mqtt.published] == ["out/k"] * 3
    mqtt.pending[1].set_result(None)
    mqtt.pending[2].set_result(None)
    await settle()
    assert src.tracker.committable() == {}
    assert src.tracker.inflight == 3
    mqtt.pending[0].set_result(None)
    await settle()
    assert src.tracker.committable() == {TP: 13}
    assert src.tracker.inflight == 0
    assert (src.metrics.get("received"), src.metrics.get("success")) == (3, 3)


async def test_a_record_whose_topic_cannot_render_is_counted_and_does_not_stop_the_partition(
        record, source, settle):
    mqtt = InMemoryMqtt()
    src = source(mqtt)
    src.handler.handle_batches({TP: [record(0, key=b"a/#"), record(1, key=b"b")]})
    await settle()
    assert [p.topic for p in mqtt.published] == ["out/b"]
    assert src.tracker.committable() == {TP: 2}
    snap = src.metrics.snapshot()
    assert (snap["received"], snap["success"], snap["failed"], snap["failed.render"]) == (
        2, 1, 1, 1)


async def test_invalid_utf8_under_mode_none_is_a_render_failure_and_base64_carries_it(
        record, source, settle):
    mqtt = InMemoryMqtt()
    src = source(mqtt)
    src.handler.handle_batches({TP: [record(0, value=b"\xff")]})
    await settle()
    assert mqtt.published == [] and src.metrics.get("failed.render") == 1
    src64 = source(mqtt, value_encoding_mode="base64")
    src64.handler.handle_batches({TP: [record(0, value=b"\xff")]})
    await settle()
    assert mqtt.published[0].payload == b"/w=="


async def test_a_lost_session_rewinds_to_the_first_unacked_record(record, source, settle):
    mqtt = InMemoryMqtt(hold_acks=True)
    src = source(mqtt)
    src.handler.handle_batches({TP: [record(5), record(6), record(7)]})
    mqtt.pending[0].set_result(None)
    mqtt.ack(error=MqttUnavailable("connection lost"))
    await settle()
    assert src.handler.rewind
    assert src.tracker.rewind() == {TP: 6}
    assert src.tracker.inflight == 0
    assert src.tracker.committable() == {TP: 6}


async def test_publishing_while_disconnected_stops_the_batch_for_a_rewind(record, source):
    mqtt = InMemoryMqtt()
    mqtt.connected.clear()  # the twin's publishes now raise MqttUnavailable, as the real one's
    src = source(mqtt)
    src.handler.handle_batches({TP: [record(3), record(4)]})
    assert src.handler.rewind and src.tracker.inflight == 1
    assert src.tracker.rewind() == {TP: 3}
    assert mqtt.published == [] and src.metrics.get("failed") == 0


async def test_a_poison_record_before_a_lost_session_fails_alone_and_is_not_consumed_again(
        record, source, settle):
    mqtt = InMemoryMqtt()
    mqtt.connected.clear()
    src = source(mqtt)
    src.handler.handle_batches({TP: [record(3, key=b"a/#"), record(4), record(5)]})
    await settle()
    assert src.handler.rewind
    snap = src.metrics.snapshot()
    assert (snap["failed"], snap["failed.render"]) == (1, 1)
    assert src.tracker.rewind() == {TP: 4}  # consumed again from the first good record


async def test_space_is_cleared_above_half_of_max_inflight(record, source, settle):
    mqtt = InMemoryMqtt(hold_acks=True)
    src = source(mqtt, max_inflight=4)
    src.handler.handle_batches({TP: [record(i) for i in range(3)]})
    assert not src.tracker.space.is_set()
    mqtt.ack(1)
    await settle()
    assert src.tracker.space.is_set()


async def test_rules_see_the_emqx_message_with_event_and_timestamp(record, source, settle):
    seen = []

    async def dispatch(event):
        seen.append(dict(event))

    mqtt = InMemoryMqtt()
    src = source(mqtt, topic="in", topic_mapping=[])
    src.context.dispatch = dispatch
    src.handler.handle_batches({TP: [record(0, value=b'{"a": 1}')]})
    await settle()
    [event] = seen
    assert event["event"] == "$bridges/kafka_consumer:s"
    assert {k: event[k] for k in ("key", "value", "offset", "topic", "ts_type", "headers")} == {
        "key": "k", "value": '{"a": 1}', "offset": 0, "topic": "in", "ts_type": "create",
        "headers": {}}
    assert src.tracker.committable() == {TP: 1}


async def test_a_commit_is_due_once_half_of_max_inflight_settled_whatever_the_interval(
        record, source, settle):
    mqtt = InMemoryMqtt()
    src = source(mqtt, max_inflight=10, offset_commit_interval_seconds="1h")
    src.tracker.window(TP).committed = 0
    src.handler.handle_batches({TP: [record(i) for i in range(4)]})
    await settle()
    assert src.tracker.uncommitted() == 4 and not src._commit_due(3600)
    src.handler.handle_batches({TP: [record(4)]})
    await settle()
    assert src.tracker.uncommitted() == 5 and src._commit_due(3600)
    src.tracker.mark_committed(src.tracker.committable())
    assert src.tracker.uncommitted() == 0 and not src._commit_due(3600)


async def test_settled_records_hold_their_room_in_the_window_until_committed(
        record, source, settle):
    mqtt = InMemoryMqtt(hold_acks=True)
    src = source(mqtt, max_inflight=10, offset_commit_interval_seconds="1h")
    src.tracker.window(TP).committed = 0
    src.handler.handle_batches({TP: [record(i) for i in range(6)]})
    assert src._room() == 4
    mqtt.ack(6)
    await settle()
    assert src.tracker.inflight == 0
    assert src._room() == 4  # what a crash now would deliver again: still 6 records
    src.tracker.mark_committed(src.tracker.committable())
    assert src._room() == 10

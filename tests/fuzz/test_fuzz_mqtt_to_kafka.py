"""Hostile MQTT messages through the whole app on twins: nothing stops or stalls the stream.

The invariants, for any mix of messages: handing a message to the app never raises; every
ticket is sealed and every ack released (the ack window empties, in arrival order); a good
message published after the hostile ones reaches Kafka and MQTT; what reported ``connected``
before still does; and nothing reaches the event loop's exception handler.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz import strategies as s
from tests.fuzz.twins import Harness, connected, harness, properties

pytestmark = pytest.mark.fuzz

GOOD_TOPIC = "good/1"


def good_payload(n: int) -> bytes:
    return orjson.dumps({"a": {"b": n}, "n": n, "k": f"key-{n}", "h": "v", "d": n,
                         "xs": [n]})


async def check_stream(h: Harness, messages: list[tuple[str, bytes, int, object]]) -> None:
    """Publish ``messages`` then a good one, and check every invariant."""
    before = connected(await h.health())
    escaped = []
    for topic, payload, qos, props in messages:
        try:
            h.publish(topic, payload, qos=qos, properties=props)  # type: ignore[arg-type]
        except Exception as exc:  # the invariant: nothing escapes
            escaped.append(f"{topic[:40]!r} {payload[:40]!r}...: {exc!r}")
    assert not escaped, f"handing messages to the app raised: {escaped}"
    good = good_payload(len(messages))
    h.publish(GOOD_TOPIC, good, qos=1)
    await h.settle()
    assert h.unacked == 0, f"{h.unacked} messages still hold the ack window"
    assert h.acked == h.expected_acks, "acks were released out of order or not at all"
    whole = [r for r in h.kafka.records if r[0] == "kafka_producer:whole"]
    assert any(orjson.loads(r[3] or b"null").get("payload") == good.decode()
               for r in whole if (r[3] or b"").startswith(b"{")), \
        "the good message did not reach Kafka"
    assert any(p.topic == f"echo/{GOOD_TOPIC}" and p.payload == good
               for p in h.mqtt_out.published), "the good message was not republished"
    after = connected(await h.health())
    assert before <= after, f"no longer connected: {sorted(before - after)}"
    assert not h.loop_errors, f"exceptions reached the event loop: {h.loop_errors[:3]}"


def run(coro_fn, *args):
    """Run one example on a fresh event loop and data directory."""
    async def main():
        with tempfile.TemporaryDirectory() as tmp:
            h = await harness(Path(tmp))
            try:
                await coro_fn(h, *args)
            finally:
                await h.stop()
    asyncio.run(main())


message = st.tuples(s.topics | st.just("t/x"), s.payloads, st.sampled_from([0, 1, 1, 2]),
                    st.none() | s.user_properties.map(properties))


@given(messages=st.lists(message, min_size=1, max_size=4))
@s.fuzz_settings(examples=40)
def test_no_message_stops_the_stream(messages):
    run(check_stream, messages)


@given(payload=s.payloads)
@s.fuzz_settings(examples=40)
def test_no_payload_stops_the_stream(payload):
    run(check_stream, [("t/p", payload, 1, None)])


@given(topic=s.topics, qos=st.sampled_from([0, 1, 2]))
@s.fuzz_settings(examples=40)
def test_no_topic_stops_the_stream(topic, qos):
    run(check_stream, [(topic, b'{"a": {"b": 1}, "n": 1}', qos, None)])


@given(user=s.user_properties, content_type=st.none() | st.text(max_size=30),
       response_topic=st.none() | s.topics, correlation=st.none() | st.binary(max_size=30),
       indicator=st.none() | st.sampled_from([0, 1]),
       expiry=st.none() | st.integers(0, 2**32 - 1))
@s.fuzz_settings(examples=40)
def test_no_user_property_stops_the_stream(user, content_type, response_topic, correlation,
                                           indicator, expiry):
    props = properties(user, content_type=content_type, response_topic=response_topic,
                       correlation=correlation, format_indicator=indicator, expiry=expiry)
    run(check_stream, [("t/u", b'{"n": 1}', 1, props)])


# -- the cases of issue #12, spelled out -------------------------------------------------------

@pytest.mark.parametrize("depth", [255, 300, 1000])
def test_a_deep_payload_rendered_whole_fails_alone(depth):
    # Issue #12, case 1: {"d": <array nested 300 deep>} through `${.}` stalled the ack window.
    run(check_stream, [("deep/1", b'{"d": ' + s.nested(depth) + b"}", 1, None)])


def test_a_message_whose_topic_is_not_utf8_is_acked_in_order():
    async def case(h: Harness) -> None:
        h.publish("t/1", b"1")
        h.publish("t/\ufffd", b"2", raw_topic=b"t/\xff")
        await check_stream(h, [])
    run(case)


def test_a_hundred_messages_after_a_poison_one_all_go_through():
    async def case(h: Harness) -> None:
        h.publish("deep/1", b'{"d": ' + s.nested(300) + b"}")
        for i in range(100):
            h.publish(f"t/{i}", good_payload(i))
        await h.settle()
        assert h.unacked == 0, f"{h.unacked} of 101 messages not acknowledged"
        assert len(h.acked) == 101
    run(case)

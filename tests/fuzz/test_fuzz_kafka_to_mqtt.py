"""Hostile Kafka records through the source's mapping and the rules, on twins: offsets advance.

The invariants, for any batch of records: handing it to the source never raises; once settled,
every offset is committable (the window reaches the end of the batch); a good record after the
hostile ones is published to MQTT and reaches the rules; what reported ``connected`` still does;
nothing reaches the event loop's exception handler.
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
from tests.fuzz.twins import SOURCE_TOPIC, SOURCE_TOPIC_WHOLE, Harness, connected, harness

pytestmark = pytest.mark.fuzz

Rec = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


async def check_records(h: Harness, topic: str, records: list[Rec]) -> None:
    """Consume ``records`` then a good one on ``topic``, and check every invariant."""
    before = connected(await h.health())
    good_value = orjson.dumps({"data": "good", "n": len(records)})
    batch = [*records, (b"good", good_value, [("h", b"v")])]
    try:
        end = h.consume(topic, batch)
    except Exception as exc:  # the invariant: nothing escapes
        pytest.fail(f"handing {len(batch)} records to the source raised {exc!r}")
    await h.settle()
    assert h.committable(topic) == end, (
        f"offsets stopped at {h.committable(topic)} of {end}: a record holds the window")
    assert h.source.tracker.inflight == 0
    if topic == SOURCE_TOPIC:  # `${value.data}` to from-kafka/${key}
        good = [p for p in h.mqtt_out.published
                if p.topic == "from-kafka/good" and p.payload == b"good"]
    else:  # the whole message to from-kafka-whole
        good = [p for p in h.mqtt_out.published
                if p.topic == "from-kafka-whole" and b'"key":"good"' in p.payload]
    assert good, "the good record was not published to MQTT"
    assert any(r[0] == "kafka_producer:whole" and b'"good"' in (r[3] or b"")
               for r in h.kafka.records), "the good record did not reach the rules' action"
    after = connected(await h.health())
    assert before <= after, f"no longer connected: {sorted(before - after)}"
    assert not h.loop_errors, f"exceptions reached the event loop: {h.loop_errors[:3]}"


def run(topic: str, records: list[Rec]) -> None:
    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            h = await harness(Path(tmp))
            try:
                await check_records(h, topic, records)
            finally:
                await h.stop()
    asyncio.run(main())


def _value() -> st.SearchStrategy[bytes | None]:
    # Hostile payloads, also under "data" (which the first mapping's template reads).
    wrapped = s.payloads.map(lambda p: b'{"data": ' + p + b"}")
    return st.none() | s.payloads | wrapped


record = st.tuples(s.keys, _value(), s.headers)


@given(topic=st.sampled_from([SOURCE_TOPIC, SOURCE_TOPIC_WHOLE]),
       records=st.lists(record, min_size=1, max_size=4))
@s.fuzz_settings(examples=40)
def test_no_record_stops_the_partition(topic, records):
    run(topic, records)


@pytest.mark.parametrize("depth", [255, 300, 1000])
def test_a_deep_record_value_rendered_by_the_mapping_fails_alone(depth):
    # Issue #12, case 2: `payload_template: ${value.data}` on such a record killed the consume
    # task.
    run(SOURCE_TOPIC, [(b"k", b'{"data": ' + s.nested(depth) + b"}", [])])


def test_a_deep_record_header_fails_alone():
    run(SOURCE_TOPIC_WHOLE, [(b"k", b"v", [("deep", s.nested(300))])])

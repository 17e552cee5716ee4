"""The Kafka load generator's readiness check, on librdkafka statistics documents."""

from __future__ import annotations

import json

from mqferry_bench.kafka_load import _Ready


def _stats(state: str, partitions: dict[str, int]) -> str:
    return json.dumps({"eos": {"idemp_state": state},
                       "topics": {"t": {"partitions": {n: {"leader": leader}
                                                       for n, leader in partitions.items()}}}})


def test_not_ready_before_any_statistics() -> None:
    assert not _Ready("t").ready()


def test_not_ready_while_the_producer_id_is_being_fetched() -> None:
    ready = _Ready("t")
    ready(_stats("WaitPID", {"-1": -1, "0": 1}))
    assert not ready.ready()


def test_not_ready_while_the_topic_has_no_leader() -> None:
    ready = _Ready("t")
    ready(_stats("Assigned", {"-1": -1}))  # librdkafka's unassigned partition only
    assert not ready.ready()
    ready(_stats("Assigned", {"-1": -1, "0": -1}))
    assert not ready.ready()


def test_ready_with_a_producer_id_and_a_leader() -> None:
    ready = _Ready("t")
    ready(_stats("Assigned", {"-1": -1, "0": 1}))
    assert ready.ready()


def test_another_topic_does_not_count() -> None:
    ready = _Ready("other")
    ready(_stats("Assigned", {"0": 1}))
    assert not ready.ready()

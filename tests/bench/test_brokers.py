"""The benchmarks' Kafka broker is the one ``scripts/services.sh`` runs, and never another."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bridges import Brokers, kafka_bootstrap


def test_the_bootstrap_follows_the_port_services_sh_was_given():
    assert kafka_bootstrap({"MQFERRY_KAFKA_PORT": "19092"}) == "127.0.0.1:19092"
    assert kafka_bootstrap({}) == "127.0.0.1:9092"
    assert kafka_bootstrap({"MQFERRY_KAFKA_BOOTSTRAP": "127.0.0.1:19092",
                            "MQFERRY_KAFKA_PORT": "19092"}) == "127.0.0.1:19092"
    assert kafka_bootstrap({"MQFERRY_KAFKA_BOOTSTRAP": "h1:9092"}) == "h1:9092"
    # another machine's broker is the user's choice
    assert kafka_bootstrap({"MQFERRY_KAFKA_BOOTSTRAP": "kafka.example:9093",
                            "MQFERRY_KAFKA_PORT": "19092"}) == "kafka.example:9093"


def test_a_bootstrap_of_another_broker_than_the_port_is_refused(monkeypatch):
    monkeypatch.setenv("MQFERRY_KAFKA_PORT", "19092")
    monkeypatch.setenv("MQFERRY_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    with pytest.raises(RuntimeError, match=r"127\.0\.0\.1:9092 is not the Kafka of this "
                                           r"checkout's scripts/services.sh \(port 19092"):
        Brokers()


def test_without_the_port_the_bootstrap_must_be_the_default_broker(monkeypatch):
    # `scripts/services.sh env` of another checkout exports its bootstrap, not its port
    monkeypatch.delenv("MQFERRY_KAFKA_PORT", raising=False)
    monkeypatch.setenv("MQFERRY_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    with pytest.raises(RuntimeError, match=r"\(port 9092"):
        Brokers()

"""The benchmark scripts refuse an MQTT broker whose store is full of earlier runs' messages."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import harness
from bridges import Brokers


@pytest.fixture
def dev(tmp_path, monkeypatch):
    (tmp_path / "mosquitto").mkdir()
    monkeypatch.setenv("MQFERRY_DEV_DIR", str(tmp_path))
    return tmp_path / "mosquitto" / "mosquitto.db"


def test_a_clean_broker_is_measured_and_its_store_recorded(dev, monkeypatch):
    dev.write_bytes(b"x" * 1024)
    monkeypatch.setattr(harness, "broker_store", lambda brokers: 35)
    assert harness.check_broker_store(Brokers()) == "35 messages; persistence file 0.0 MiB"


def test_a_broker_that_stores_many_messages_is_refused_with_the_remedy(dev, monkeypatch):
    monkeypatch.setattr(harness, "broker_store", lambda brokers: 522_423)
    with pytest.raises(SystemExit, match=r"stores 522423 messages.*reset-mosquitto"):
        harness.check_broker_store(Brokers())


def test_a_large_persistence_file_is_refused_when_the_broker_says_nothing(dev, monkeypatch):
    with dev.open("wb") as f:
        f.truncate(60 * 2**20)  # sparse: 60 MiB of store
    monkeypatch.setattr(harness, "broker_store", lambda brokers: None)
    with pytest.raises(SystemExit, match=r"persistence file 60 MiB"):
        harness.check_broker_store(Brokers())
    dev.unlink()
    assert harness.check_broker_store(Brokers()) == "not told (unchanged)"

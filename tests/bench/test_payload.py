from __future__ import annotations

import orjson
import pytest

from mqferry_bench import Stamp, decode, encode


@pytest.mark.parametrize("size", [1, 60, 200, 4096])
def test_json_payload_round_trips_and_has_its_size(size):
    payload = encode("p3", 41, 1_764_000_000_123_456, size)
    assert decode(payload) == Stamp("p3", 41, 1_764_000_000_123_456)
    assert orjson.loads(payload)["x"] == 41  # a rule can read payload.x
    if size >= 60:
        assert len(payload) == size


def test_text_payload_is_not_json_and_round_trips():
    payload = encode("p0", 7, 123, 100, json=False)
    assert len(payload) == 100
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(payload)
    assert decode(payload) == Stamp("p0", 7, 123)


@pytest.mark.parametrize("payload", [b"", b"hello", b'{"probe":1}', b"{not json", b"NJ|a|b|c|",
                                     b'{"k":"p","s":"x","t":1}'])
def test_foreign_payloads_decode_to_none(payload):
    assert decode(payload) is None

import base64

from aiokafka.structs import ConsumerRecord

from mqferry_kafka_consumer.message import record_message


def record(key=b"key", value=b'{"msg": "Hello EMQX"}', headers=(("h", b"v"),), ts_type=0):
    return ConsumerRecord(topic="testtopic-out", partition=0, offset=2, timestamp=1679665968238,
                          timestamp_type=ts_type, key=key, value=value, checksum=None,
                          serialized_key_size=3, serialized_value_size=10, headers=list(headers))


def test_the_message_is_exactly_emqx_shape():
    assert record_message(record(), "none", "none") == {
        "headers": {"h": "v"}, "key": "key", "offset": 2, "topic": "testtopic-out",
        "ts": 1679665968238, "ts_type": "create", "value": '{"msg": "Hello EMQX"}'}


def test_null_key_and_value_are_empty_strings():
    msg = record_message(record(key=None, value=None), "none", "none")
    assert (msg["key"], msg["value"]) == ("", "")


def test_base64_modes_and_log_append_time():
    msg = record_message(record(value=b"\xff\x00", ts_type=1), "base64", "base64")
    assert msg["value"] == base64.b64encode(b"\xff\x00").decode()
    assert msg["key"] == base64.b64encode(b"key").decode()
    assert msg["ts_type"] == "append"


def test_duplicate_headers_keep_the_last():
    msg = record_message(record(headers=(("h", b"1"), ("h", b"2"))), "none", "none")
    assert msg["headers"] == {"h": "2"}

import pytest

from mqferry._errors import DeliveryError
from mqferry_kafka_producer.config import KafkaProducerParameters
from mqferry_kafka_producer.render import RecordRenderer

OUT = {"clientid": "c1", "topic": "t/1", "timestamp": 1700000000123, "payload": '{"a": 1}',
       "pub_props": {"Content-Type": "json", "User-Property": {"u1": "v1", "u2": "v2"},
                     "Message-Expiry-Interval": 30},
       "n": 3}


def renderer(**params):
    return RecordRenderer(KafkaProducerParameters(topic=params.pop("topic", "t"), **params))


def test_emqx_defaults():
    r = renderer()
    assert r.render_key(OUT) == b"c1"
    assert r.render_value(OUT).startswith(b'{"clientid":"c1"')
    assert r.render_timestamp(OUT) == 1700000000123


def test_missing_single_placeholder_key_is_null_but_text_renders_empty():
    assert renderer().render_key({}) is None
    assert renderer(message={"key": "k-${clientid}"}).render_key({}) == b"k-"
    assert renderer(message={"key": ""}).render_key({}) == b""


def test_timestamp_that_is_not_epoch_ms_means_now():
    r = renderer(message={"timestamp": "${x}"})
    assert abs(r.render_timestamp({"x": "yesterday"}) - r.render_timestamp({})) < 5000
    assert r.render_timestamp({"x": "123"}) == 123


def test_dynamic_topic_and_strict_rendering():
    r = renderer(topic="dev-${clientid}")
    assert r.render_topic(OUT) == "dev-c1"
    with pytest.raises(DeliveryError) as info:
        r.render_topic({})
    assert info.value.reason == "failed.render"


def test_pub_props_user_properties_become_headers():
    r = renderer(kafka_headers="${pub_props}")
    headers = dict(r.render_headers(OUT))
    assert headers["u1"] == b"v1" and headers["u2"] == b"v2"
    assert headers["Content-Type"] == b"json"
    assert "Message-Expiry-Interval" not in headers  # mode none keeps text values only


def test_json_header_mode_encodes_every_value():
    r = renderer(kafka_headers="${pub_props}", kafka_header_value_encode_mode="json")
    headers = dict(r.render_headers(OUT))
    assert headers["Content-Type"] == b'"json"'
    assert headers["Message-Expiry-Interval"] == b"30"


def test_ext_headers_follow_kafka_headers_and_skip_missing():
    r = renderer(kafka_headers="${pub_props}", kafka_ext_headers=[
        {"kafka_ext_header_key": "clientid", "kafka_ext_header_value": "${clientid}"},
        {"kafka_ext_header_key": "fixed", "kafka_ext_header_value": "text"},
        {"kafka_ext_header_key": "gone", "kafka_ext_header_value": "${nope}"},
        {"kafka_ext_header_key": "k-${nope}", "kafka_ext_header_value": "x"},
    ])
    headers = r.render_headers(OUT)
    assert headers[-2:] == [("clientid", b"c1"), ("fixed", b"text")]


def test_header_list_and_json_forms():
    r = renderer(kafka_headers="${h}")
    assert r.render_headers({"h": [{"key": "a", "value": "1"}]}) == [("a", b"1")]
    assert r.render_headers({"h": '{"b": "2"}'}) == [("b", b"2")]
    with pytest.raises(DeliveryError, match="not a map or a list"):
        r.render_headers({"h": 5})


def test_preview_gives_the_record_and_a_key_dispatch_partition(tmp_path):
    from mqferry_kafka import KafkaConnector, KafkaConnectorConfig
    from mqferry_kafka_producer.action import KafkaProducerAction
    from mqferry_kafka_producer.config import KafkaProducerActionConfig
    from mqferry_kafka_producer.partitions import java_partition

    cfg = KafkaProducerActionConfig(connector="k", parameters={
        "topic": "t-${clientid}", "partition_strategy": "key_dispatch"})
    conn = KafkaConnector(kind="kafka_producer", name="k",
                          config=KafkaConnectorConfig(bootstrap_hosts="h:9092"))
    action = KafkaProducerAction(name="a", config=cfg, connector=conn, data_dir=tmp_path)
    out = {"clientid": "c1", "timestamp": 5}
    assert action.preview(out)["partition"] is None  # partition count not known yet
    action.partitioner.found("t-c1", 6)  # as a metadata lookup would
    got = action.preview(out)
    assert got["topic"] == "t-c1" and got["key"] == "c1" and got["timestamp"] == 5
    assert got["partition"] == java_partition(b"c1", 6)
    with pytest.raises(DeliveryError, match=r"failed\.render"):
        action.preview({})


@pytest.mark.parametrize("name", ["", ".", "..", "a b", "a/b", "é", "x" * 250, "t\n"])
def test_invalid_topic_names_are_refused_with_the_reason(name):
    from mqferry_kafka_producer.topics import topic_problem

    assert topic_problem(name) is not None
    r = renderer(topic="${t}")
    with pytest.raises(DeliveryError, match=r"failed\.invalid_topic"):
        r.render_topic({"t": name})


@pytest.mark.parametrize("name", ["a", "A-b_c.9", "x" * 249, "..."])
def test_valid_topic_names_pass(name):
    from mqferry_kafka_producer.topics import topic_problem

    assert topic_problem(name) is None
    assert renderer(topic="${t}").render_topic({"t": name}) == name


def test_a_literal_topic_or_fallback_is_checked_with_the_config():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="characters Kafka does not allow"):
        KafkaProducerParameters(topic="my topic")
    with pytest.raises(ValidationError, match="without placeholders"):
        KafkaProducerParameters(topic="t", fallback_topic="f-${x}")
    with pytest.raises(ValidationError, match="not allowed"):
        KafkaProducerParameters(topic="t", fallback_topic="..")


def test_templates_without_placeholders_render_their_text_for_any_output():
    r = renderer(topic="plain.topic", message={"key": "fixed-key", "value": "v"})
    for out in (OUT, {}, {"topic": "other"}):
        assert r.render_topic(out) == "plain.topic"
        assert r.render_key(out) == b"fixed-key"
        assert r.render_value(out) == b"v"

import pytest
from pydantic import ValidationError

from mqferry_kafka_consumer.config import KafkaConsumerParameters, KafkaConsumerSourceConfig


def params(**kw):
    return KafkaConsumerSourceConfig(connector="k", parameters=kw).parameters


def test_emqx_defaults():
    p = params(topic="in")
    assert (p.offset_reset_policy, p.offset_commit_interval_seconds, p.max_batch_bytes) == (
        "latest", 5.0, 896 * 1024)
    assert (p.key_encoding_mode, p.value_encoding_mode, p.group_id) == ("none", "none", None)


def test_a_kafka_topic_may_be_in_one_mapping_only():
    with pytest.raises(ValidationError, match=r"topic_mapping\[1\]: Kafka topic 'a' appears in "
                                              r"more than one topic_mapping entry \(also "
                                              r"topic_mapping\[0\]\)"):
        params(topic_mapping=[{"kafka_topic": "a", "mqtt_topic": "x"},
                              {"kafka_topic": "a", "mqtt_topic": "y"}])


def test_something_must_be_consumed():
    with pytest.raises(ValidationError, match="set 'topic' or 'topic_pattern'"):
        params()


@pytest.mark.parametrize("topic", ["t/#", "t/+/x", ""])
def test_a_literal_mqtt_topic_must_be_publishable(topic):
    with pytest.raises(ValidationError, match="MQTT topic"):
        params(topic_mapping=[{"kafka_topic": "a", "mqtt_topic": topic}])


def test_mqtt_topic_templates_are_allowed():
    p = params(topic_mapping=[{"kafka_topic": "a", "mqtt_topic": "t/${.key}", "qos": 1}])
    assert p.topic_mapping[0].mqtt_topic == "t/${.key}"


def test_bad_regex_and_bad_topic_names_are_named():
    with pytest.raises(ValidationError, match=r"invalid regular expression '\(': "):
        params(topic_pattern="(")
    with pytest.raises(ValidationError, match="invalid Kafka topic name 'a b'"):
        params(topic="a b")


def test_pattern_subscription_covers_the_pattern_and_the_named_topics():
    p = params(topic_pattern=r"sensors\..*",
               topic_mapping=[{"kafka_topic": "cmd.x", "mqtt_topic": "c"}])
    import re
    pat = re.compile(p.subscription_pattern())
    assert pat.match("sensors.a") and pat.match("cmd.x")
    assert not pat.match("xsensors.a") and not pat.match("cmd.xy")
    assert KafkaConsumerParameters(topic="a").subscription_pattern() is None


def test_the_dead_letter_topic_must_not_be_consumed():
    with pytest.raises(ValidationError, match="dead_letter_topic 'in' is one of the consumed"):
        params(topic="in", dead_letter_topic="in")
    with pytest.raises(ValidationError, match=r"dead_letter_topic 's\.dlq'"):
        params(topic_pattern=r"s\..*", dead_letter_topic="s.dlq")


def test_max_inflight_must_be_positive():
    with pytest.raises(ValidationError, match="max_inflight"):
        params(topic="a", max_inflight=0)

"""MQTT topic matching and the topic index."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqferry._rules import RuleCompileError, TopicIndex, compile_sql, topic_matches


@pytest.mark.parametrize(
    ("filter_", "topic", "expected"),
    [
        ("t/1", "t/1", True),
        ("t/1", "t/2", False),
        ("t/+", "t/1", True),
        ("t/+", "t/1/2", False),
        ("t/#", "t", True),
        ("t/#", "t/1/2", True),
        ("#", "a/b", True),
        ("+/+", "a/b", True),
        ("+", "a/b", False),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/x", True),
        ("t/+/x", "t//x", True),
        ("a/b", "a/b/", False),
        ("sport/#", "sport", True),
    ],
)
def test_topic_matches(filter_: str, topic: str, expected: bool) -> None:
    assert topic_matches(filter_, topic) is expected


def test_index_matches_every_filter_kind() -> None:
    index: TopicIndex[str] = TopicIndex()
    for f in ("t/1", "t/+", "t/#", "#", "x/#", "$SYS/#"):
        index.add(f, f)
    assert sorted(index.match("t/1")) == ["#", "t/#", "t/+", "t/1"]
    assert sorted(index.match("t")) == ["#", "t/#"]
    assert index.match("$SYS/broker") == ["$SYS/#"]
    assert len(index) == 6


def test_index_remove_and_duplicates() -> None:
    index: TopicIndex[int] = TopicIndex()
    index.add("a/+", 1)
    index.add("a/+", 2)
    index.remove("a/+", 1)
    assert index.match("a/b") == [2]
    index.remove("a/+", 2)
    assert index.match("a/b") == []
    with pytest.raises(KeyError):
        index.remove("a/+", 2)


_LEVEL = st.sampled_from(["a", "b", "c", "", "$x"])


@given(
    st.lists(
        st.lists(st.sampled_from(["a", "b", "+", "#", "$x"]), min_size=1, max_size=4), max_size=10
    ),
    st.lists(_LEVEL, min_size=1, max_size=4),
)
def test_index_agrees_with_topic_matches(filters: list[list[str]], levels: list[str]) -> None:
    index: TopicIndex[str] = TopicIndex()
    valid = []
    for parts in filters:
        if "#" in parts[:-1]:
            continue
        f = "/".join(parts)
        valid.append(f)
        index.add(f, f)
    topic = "/".join(levels)
    assert sorted(index.match(topic)) == sorted(f for f in valid if topic_matches(f, topic))


@pytest.mark.parametrize(("source", "why"), [
    ("a/b#", "'#' must be a whole level, and the last one"),
    ("a/#/b", "'#' must be a whole level, and the last one"),
    ("#/a", "'#' must be a whole level, and the last one"),
    ("a/+x", "'+' must be a whole level"),
    ("+x", "'+' must be a whole level"),
    ("", "it is empty"),
    ("a/\x01", "U+0001"),
])
def test_from_refuses_what_a_broker_refuses_to_subscribe(source: str, why: str) -> None:
    # Mosquitto closes the session on such a SUBSCRIBE: the bridge would never stay up
    with pytest.raises(RuleCompileError, match="is not a valid MQTT topic filter") as info:
        compile_sql(f'SELECT * FROM "{source}"')
    assert why in str(info.value)


@pytest.mark.parametrize("source", ["$share/g/t/#", "$queue/t/1"])
def test_from_refuses_shared_subscriptions_and_names_the_setting(source: str) -> None:
    with pytest.raises(RuleCompileError, match=r"mqtt\.share_group"):
        compile_sql(f'SELECT * FROM "{source}"')


def test_from_takes_sys_topics_as_topic_filters_and_only_event_prefixes_as_events() -> None:
    rule = compile_sql('SELECT * FROM "$SYS/broker/#", "t/#", "$events/client_connected", '
                       '"$bridges/kafka_consumer:k", "$sources/kafka_consumer:k"')
    assert rule.topic_filters == ("$SYS/broker/#", "t/#")
    assert rule.event_topics == ("$events/client_connected", "$bridges/kafka_consumer:k",
                                 "$sources/kafka_consumer:k")

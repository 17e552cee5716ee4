"""Routing: which rules a topic reaches, remembered per topic and forgotten on every change."""

from types import SimpleNamespace

from mqferry._runtime import routing
from mqferry._runtime.routing import Routing


def rule(rid: str, *filters: str):
    return SimpleNamespace(id=rid, compiled=SimpleNamespace(topic_filters=filters,
                                                            event_topics=()))


def ids(rules) -> list[str]:
    return sorted(r.id for r in rules)


def test_a_topic_reaches_the_rules_whose_filters_match_it():
    r = Routing({"a": rule("a", "t/#"), "b": rule("b", "t/+/x"), "c": rule("c", "u/1")})
    assert ids(r.match("t/1/x")) == ["a", "b"]
    assert ids(r.match("t/1/x")) == ["a", "b"]  # again, from what was remembered
    assert ids(r.match("u/1")) == ["c"]
    assert r.match("v") == ()


def test_adding_and_removing_a_rule_changes_the_match_of_a_topic_seen_before():
    r = Routing({"a": rule("a", "t/#")})
    assert ids(r.match("t/1")) == ["a"]
    r.add(rule("b", "t/1"))
    assert ids(r.match("t/1")) == ["a", "b"]
    r.remove("a")
    assert ids(r.match("t/1")) == ["b"]
    r.add(rule("b", "other"))  # replaced with another filter
    assert r.match("t/1") == ()


def test_many_distinct_topics_do_not_grow_the_memory_beyond_its_size(monkeypatch):
    monkeypatch.setattr(routing, "MATCH_CACHE_SIZE", 8)
    r = Routing({"a": rule("a", "dev/+")})
    for i in range(100):
        assert ids(r.match(f"dev/{i}")) == ["a"]
        assert len(r._matches) <= 8


def test_a_long_topic_is_matched_but_not_remembered():
    r = Routing({"a": rule("a", "dev/#")})
    long_topic = "dev/" + "x" * routing.MATCH_CACHE_TOPIC
    assert ids(r.match(long_topic)) == ["a"]
    assert long_topic not in r._matches
    assert ids(r.match("dev/1")) == ["a"] and "dev/1" in r._matches


def test_a_rule_whose_filters_overlap_runs_once_per_message():
    # EMQX runs a rule once per message however many of its FROM filters match
    r = Routing({"a": rule("a", "t/+", "t/#", "t/1"), "b": rule("b", "t/1", "t/1")})
    assert ids(r.match("t/1")) == ["a", "b"]
    assert ids(r.match("t/2")) == ["a"]

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


def test_each_copy_of_a_message_reaches_the_rules_of_its_subscription_only():
    # the broker sends one copy per matching subscription: each rule takes one of them
    r = Routing({"a": rule("a", "t/#"), "b": rule("b", "t/+"), "c": rule("c", "t/1")})
    copies = [r.for_route(route, "t/1") for route in ("t/#", "t/+", "t/1")]
    assert [ids(c) for c in copies] == [["a"], ["b"], ["c"]]


def test_a_rule_with_several_matching_filters_takes_the_copy_of_its_first_only():
    r = Routing({"a": rule("a", "t/+", "t/#", "x/y"), "b": rule("b", "t/#")})
    # "t/#" sorts before "t/+": rule a takes the "t/#" copy of t/1, and skips the "t/+" one
    assert ids(r.for_route("t/#", "t/1")) == ["a", "b"]
    assert ids(r.for_route("t/+", "t/1")) == []
    # t/1/2 matches "t/#" only: its one copy
    assert ids(r.for_route("t/#", "t/1/2")) == ["a", "b"]
    assert ids(r.for_route("x/y", "x/y")) == ["a"]


def test_a_rule_takes_the_copy_of_its_filter_subscribed_first():
    # t/+ was subscribed long before t/# (lower identifier): its copies cover all t/# would
    # bring, and those queued before t/# existed; sorted order would pick t/# and miss them
    ranks = {"t/+": 7, "t/#": 900}
    r = Routing({"a": rule("a", "t/+", "t/#"), "b": rule("b", "t/#")}, ranks)
    assert ids(r.for_route("t/+", "t/1")) == ["a"]
    assert ids(r.for_route("t/#", "t/1")) == ["b"]
    assert ids(r.for_route("t/#", "t/1/2")) == ["a", "b"]  # t/+ does not match it
    ranks["t/#"] = 3  # the session subscribed them again in another order: followed as it goes
    assert ids(r.for_route("t/#", "t/1")) == ["a", "b"]
    assert ids(r.for_route("t/+", "t/1")) == []


def test_the_session_ranks_its_filters_by_when_they_were_subscribed(tmp_path):
    from mqferry._mqtt.subscriptions import SubscriptionIds
    path = tmp_path / "s.json"
    ids_ = SubscriptionIds(path)
    old = ids_.assign("$share/g/t/+", "t/+")
    ids_.save()
    again = SubscriptionIds(path)  # held from the file, before it is subscribed again
    assert again.ranks == {"t/+": old}
    new = again.assign("t/#", "t/#")
    assert again.ranks == {"t/+": old, "t/#": new} and old < new
    again.forget("$share/g/t/+")
    assert again.ranks == {"t/#": new}


def test_a_copy_for_a_filter_no_rule_uses_goes_by_its_topic():
    # a subscription on its way out (or one a persistent session kept): at least once
    r = Routing({"a": rule("a", "t/#")})
    assert ids(r.for_route("t/+", "t/1")) == ["a"]
    assert r.for_route("old/#", "old/1") == ()


def test_the_copies_follow_a_change_of_rules():
    r = Routing({"a": rule("a", "t/#")})
    assert ids(r.for_route("t/#", "t/1")) == ["a"]
    r.add(rule("b", "t/#", "t/+"))
    assert ids(r.for_route("t/#", "t/1")) == ["a", "b"]
    assert ids(r.for_route("t/+", "t/1")) == []
    r.remove("a")
    assert ids(r.for_route("t/#", "t/1")) == ["b"]
    r.remove("b")
    assert r.for_route("t/#", "t/1") == ()
    assert r._by_filter == {}


def test_a_retired_copy_reaches_the_rules_without_a_copy_of_their_own():
    # "s" on p/s/+ was removed while its copies were queued; "all" on p/# was subscribed
    # before it (it has a copy of each message), "late" on p/+/1 after it (it has none)
    r = Routing({"all": rule("all", "p/#"), "late": rule("late", "p/+/1"),
                 "x": rule("x", "x/#")})
    assert ids(r.for_retired("p/s/+", "p/s/1", ("p/#",))) == ["late"]
    assert ids(r.for_retired("p/s/+", "p/s/1", ())) == ["all", "late"]  # order unknown
    assert ids(r.for_retired("p/s/+", "p/s/1", ("p/#", "p/+/1"))) == []


def test_a_rule_whose_filter_changed_takes_the_copies_queued_under_the_old_one():
    # r was on p/+ (retired) and is now on p/#, subscribed after it: nothing queued for p/#
    r = Routing({"r": rule("r", "p/#")})
    assert ids(r.for_retired("p/+", "p/1", ())) == ["r"]


def test_a_copy_of_a_filter_held_from_before_that_a_rule_still_uses_is_that_filters():
    # right after a connect, before the rules' filters are subscribed again
    r = Routing({"all": rule("all", "p/#"), "s": rule("s", "p/s/+")})
    assert ids(r.for_retired("p/#", "p/s/1", ())) == ["all"]
    assert ids(r.for_retired("p/s/+", "p/s/1", ("p/#",))) == ["s"]

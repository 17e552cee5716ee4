"""The subscription identifiers of a session, and what it remembers of them across runs."""

from __future__ import annotations

import json
import logging

from mqferry._mqtt.codec import MAX_SUBSCRIPTION_ID
from mqferry._mqtt.subscriptions import SubscriptionIds, listing


def test_each_filter_has_an_identifier_of_its_own_that_routes_its_copies():
    ids = SubscriptionIds()
    a, b = ids.assign("t/#", "t/#"), ids.assign("$share/g/t/+", "t/+")
    assert a != b and 1 <= a <= MAX_SUBSCRIPTION_ID and 1 <= b <= MAX_SUBSCRIPTION_ID
    assert ids.assign("t/#", "t/#") == a  # subscribed again: the same identifier
    assert ids.routes[a] == ("t/#",) and ids.routes[b] == ("t/+",)  # the rules' spelling
    ids.forget("t/#")
    assert a not in ids.routes and ids.routes[b] == ("t/+",)


def test_identifiers_go_on_from_where_the_last_run_left_them(tmp_path):
    path = tmp_path / "mqtt" / "c.subscriptions.json"
    first = SubscriptionIds(path)
    a = first.assign("a", "a")
    first.assign("b", "b")
    first.save()
    again = SubscriptionIds(path)
    assert again.held == first.ids
    assert again.assign("a", "a") == a  # a filter kept keeps its identifier
    assert again.assign("c", "c") not in first.ids.values()
    assert again.stale() == ["b"]  # the broker may still hold it


def test_a_filter_released_stays_held_until_it_is_unsubscribed(tmp_path):
    ids = SubscriptionIds(tmp_path / "s.json")
    ids.assign("a", "a")
    ids.release("a")
    assert ids.stale() == ["a"]
    ids.save()
    assert json.loads((tmp_path / "s.json").read_text())["subscribed"] == {"a": ids.held["a"]}
    ids.forget("a")
    ids.save()
    assert json.loads((tmp_path / "s.json").read_text())["subscribed"] == {}


def test_a_session_the_broker_lost_holds_nothing_from_before(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"next": 10, "subscribed": {"old/#": 3}}))
    ids = SubscriptionIds(path)
    assert ids.stale() == ["old/#"]
    ids.session_lost()
    assert ids.stale() == []


def test_identifiers_wrap_around_before_the_largest():
    ids = SubscriptionIds()
    ids._next = MAX_SUBSCRIPTION_ID
    assert ids.assign("a", "a") == MAX_SUBSCRIPTION_ID
    assert ids.assign("b", "b") == 1


def test_an_unreadable_file_is_named_and_ignored(tmp_path, caplog):
    path = tmp_path / "s.json"
    path.write_text('{"next": 3, "subscribed": ')
    with caplog.at_level(logging.WARNING):
        ids = SubscriptionIds(path)
    assert ids.held == {} and ids._next >= 1 << 20  # not 3: nothing is trusted
    assert str(path) in caplog.text and "stay subscribed" in caplog.text


def test_a_file_that_cannot_be_written_is_named_and_the_session_goes_on(tmp_path, caplog):
    (tmp_path / "mqtt").write_text("a file where the directory would be")
    ids = SubscriptionIds(tmp_path / "mqtt" / "s.json")
    ids.assign("a", "a")
    with caplog.at_level(logging.WARNING):
        ids.save()
    assert "cannot write" in caplog.text and list(ids.ids) == ["a"]


def test_log_lines_name_twenty_filters_and_count_the_rest():
    assert listing([f"f/{i}" for i in range(3)]) == "f/0, f/1, f/2"
    line = listing([f"f/{i}" for i in range(100_000)])
    assert line.startswith("f/0, f/1,") and line.endswith("f/19 and 99980 more")

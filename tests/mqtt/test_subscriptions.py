"""The subscription identifiers of a session, and what it remembers of them across runs."""

from __future__ import annotations

import json
import logging

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqferry._config.models import MqttConfig
from mqferry._mqtt import control, subscriptions
from mqferry._mqtt.codec import MAX_SUBSCRIPTION_ID, RETIRED
from mqferry._mqtt.control import Connack
from mqferry._mqtt.protocol import MqttProtocol
from mqferry._mqtt.subscriptions import Subscriber, SubscriptionIds, listing
from tests.mqtt.twins import BrokerTransport


def connack(**properties: int) -> Connack:
    props = Properties(PacketTypes.CONNACK)
    for name, value in properties.items():
        setattr(props, name, value)
    return Connack(0, False, props)


def subscriber(tmp_path, **properties: int) -> Subscriber:
    sub = Subscriber(MqttConfig(server="127.0.0.1:1883", clientid="c"))
    sub.ids = SubscriptionIds(tmp_path / "s.json")
    sub.connected(connack(**properties))
    return sub


async def test_the_subscribes_of_a_batch_leave_in_one_write_each_with_its_identifier(tmp_path):
    transport = BrokerTransport()
    proto = transport.attach(MqttProtocol(on_publish=lambda m: None))
    sub = subscriber(tmp_path)
    await sub.subscribe(proto, ["t/#", "t/+", "u"])
    assert len(transport.writes) == 1
    sent = {s.filters[0]: s.sub_id for s in transport.subscribes}
    assert sent == sub.ids.ids and len(set(sent.values())) == 3
    assert {sub.ids.routes[i] for i in sent.values()} == {("t/#",), ("t/+",), ("u",)}
    assert json.loads((tmp_path / "s.json").read_text())["subscribed"] == sent
    assert sub.refused == set()


async def test_a_filter_the_broker_refuses_is_reported_alone(tmp_path, caplog):
    transport = BrokerTransport(refuse={"t/+"})
    proto = transport.attach(MqttProtocol(on_publish=lambda m: None))
    sub = subscriber(tmp_path)
    with caplog.at_level(logging.WARNING):
        await sub.subscribe(proto, ["t/#", "t/+", "u"])
    assert sub.refused == {"t/+"}  # copies are routed by topic while it is refused
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == "the MQTT broker refused the subscription to t/+: Unspecified error"
    transport.refuse.clear()
    await sub.subscribe(proto, ["t/+"])  # taken on a later try: routed by identifier again
    assert sub.refused == set()


async def test_more_filters_than_a_batch_go_in_several_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(subscriptions, "BATCH", 2)
    transport = BrokerTransport(refuse={"f/4"})
    proto = transport.attach(MqttProtocol(on_publish=lambda m: None))
    sub = subscriber(tmp_path)
    await sub.subscribe(proto, [f"f/{i}" for i in range(5)])
    assert len(transport.writes) == 3
    assert [s.filters for s in transport.subscribes] == [[f"f/{i}"] for i in range(5)]
    assert sub.refused == {"f/4"}


async def test_a_broker_without_identifiers_gets_every_filter_in_one_subscribe(tmp_path):
    transport = BrokerTransport(refuse={"b"})
    proto = transport.attach(MqttProtocol(on_publish=lambda m: None))
    sub = subscriber(tmp_path, SubscriptionIdentifierAvailable=0)
    await sub.subscribe(proto, ["c", "a", "b"])
    [packet] = transport.subscribes
    assert packet.filters == ["a", "b", "c"] and packet.sub_id == 0
    assert sub.refused == {"b"}


@pytest.mark.parametrize("group", [None, "g"])
async def test_unsubscribing_is_one_packet_and_forgets_the_filters(tmp_path, group):
    transport = BrokerTransport()
    proto = transport.attach(MqttProtocol(on_publish=lambda m: None))
    sub = Subscriber(MqttConfig(server="127.0.0.1:1883", clientid="c", share_group=group))
    sub.ids = SubscriptionIds(tmp_path / "s.json")
    sub.connected(connack())
    await sub.subscribe(proto, ["a", "b", "c"])
    await sub.unsubscribe(proto, sub.drop(["a", "c"]))
    assert len(transport.unsubscribes) == 1
    kept = "$share/g/b" if group else "b"
    assert list(sub.ids.ids) == [kept] and sub.ids.stale() == []
    assert list(json.loads((tmp_path / "s.json").read_text())["subscribed"]) == [kept]


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


def test_the_file_is_written_only_when_what_it_holds_changed(tmp_path):
    path = tmp_path / "s.json"
    ids = SubscriptionIds(path)
    ids.assign("a", "a")
    ids.assign("b", "b")
    ids.save()
    written = path.stat().st_ino  # each write replaces the file: a new inode
    ids.release("b")  # still held: the file already says so
    ids.save()
    ids.assign("a", "a")  # subscribed again with its identifier
    ids.save()
    assert path.stat().st_ino == written
    ids.forget("b")
    ids.save()
    assert path.stat().st_ino != written
    assert json.loads(path.read_text())["subscribed"] == {"a": ids.ids["a"]}
    again = SubscriptionIds(path)
    again.save()  # nothing assigned or forgotten: the file is written once, as it was read
    assert json.loads(path.read_text())["subscribed"] == {"a": ids.ids["a"]}


def test_a_file_that_could_not_be_written_is_written_on_the_next_save(tmp_path):
    (tmp_path / "mqtt").write_text("a file where the directory would be")
    ids = SubscriptionIds(tmp_path / "mqtt" / "s.json")
    ids.assign("a", "a")
    ids.save()  # fails, logged
    (tmp_path / "mqtt").unlink()
    ids.save()
    assert json.loads((tmp_path / "mqtt" / "s.json").read_text())["subscribed"] == dict(ids.ids)


# -- the state file is checked, not trusted ----------------------------------------------------


def load(tmp_path, state) -> SubscriptionIds:
    path = tmp_path / "c.subscriptions.json"
    path.write_text(json.dumps(state))
    return SubscriptionIds(path)


def test_a_new_filter_never_takes_an_identifier_the_file_holds(tmp_path, caplog):
    # "next" not past the identifier held: the new filter would have shared 1000 with t/a
    with caplog.at_level(logging.WARNING):
        ids = load(tmp_path, {"next": 1000, "subscribed": {"t/a": 1000}})
    assert ids.assign("t/a", "t/a") == 1000
    assert ids.assign("t/b", "t/b") == 1001
    assert "c.subscriptions.json" in caplog.text and "'next' is 1000" in caplog.text


def test_entries_sharing_an_identifier_are_all_dropped_and_named(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        ids = load(tmp_path, {"next": 9, "subscribed": {"a": 7, "b": 7, "c": 3}})
    assert ids.held == {"c": 3}
    assert "'a'" in caplog.text and "'b'" in caplog.text and "identifier 7" in caplog.text
    assert str(tmp_path / "c.subscriptions.json") in caplog.text
    assert ids.assign("a", "a") == 9 and ids.assign("b", "b") == 10  # their copies: by topic


def test_the_identifiers_of_dropped_entries_are_never_given_out(tmp_path):
    # the broker may still hold those subscriptions, and send copies with their identifiers
    deep = "/".join(["l"] * 202)
    ids = load(tmp_path, {"next": MAX_SUBSCRIPTION_ID,
                          "subscribed": {"a": 2, "b": 2, deep: 3, "c": 4}})
    assert ids.held == {"c": 4}
    assert [ids.assign(w, w) for w in "wxyz"] == [MAX_SUBSCRIPTION_ID, 1, 5, 6]


def test_next_goes_past_the_identifiers_of_dropped_entries(tmp_path):
    ids = load(tmp_path, {"next": 3, "subscribed": {"a": 7, "b": 7, "c": 2}})
    assert ids.assign("d", "d") == 8


@pytest.mark.parametrize("ident", [-1, 0, MAX_SUBSCRIPTION_ID + 1, 300_000_000, "5", 1.5, True,
                                   None, [3]])
def test_an_entry_whose_identifier_is_not_one_is_dropped_and_named(tmp_path, caplog, ident):
    with caplog.at_level(logging.WARNING):
        ids = load(tmp_path, {"next": 10, "subscribed": {"bad/#": ident, "good/#": 4}})
    assert ids.held == {"good/#": 4}
    assert "dropped the entry 'bad/#'" in caplog.text and repr(ident) in caplog.text
    assert str(tmp_path / "c.subscriptions.json") in caplog.text
    # subscribing it again (the loop that crashed) takes a new identifier that can be sent
    ident = ids.assign("bad/#", "bad/#")
    assert ident == 10
    assert control.subscribe_packet(1, [("bad/#", 1)], sub_id=ident)


@pytest.mark.parametrize("nxt", [-5, 0, MAX_SUBSCRIPTION_ID + 1, 300_000_000, "7", 2.5, None,
                                 False])
def test_a_next_identifier_that_is_not_one_goes_on_past_those_held(tmp_path, caplog, nxt):
    with caplog.at_level(logging.WARNING):
        ids = load(tmp_path, {"next": nxt, "subscribed": {"a": 40}})
    assert ids.held == {"a": 40}
    assert "'next' is" in caplog.text and str(tmp_path / "c.subscriptions.json") in caplog.text
    ident = ids.assign("b", "b")
    assert ident == 41
    assert control.subscribe_packet(1, [("b", 1)], sub_id=ident)


def test_a_next_identifier_that_is_not_one_with_nothing_held_starts_afresh(tmp_path):
    ids = load(tmp_path, {"next": -1, "subscribed": {}})
    assert 1 << 20 <= ids.assign("a", "a") <= 1 << 27


@pytest.mark.parametrize("wire", [
    "/".join(["l"] * 202),  # Mosquitto ends the connection on an UNSUBSCRIBE of it
    "/".join(["l"] * 129),
    "$share/g/" + "/".join(["l"] * 129),
    "a/b#",
    "",
    "x" * 65_536,
    "$share/g",
])
def test_an_entry_whose_filter_a_broker_refuses_is_dropped_and_named(tmp_path, caplog, wire):
    with caplog.at_level(logging.WARNING):
        ids = load(tmp_path, {"next": 10, "subscribed": {wire: 5, "ok/#": 6}})
    assert ids.held == {"ok/#": 6} and ids.stale() == ["ok/#"]  # never unsubscribed
    assert "dropped the entry" in caplog.text
    assert str(tmp_path / "c.subscriptions.json") in caplog.text
    assert len(caplog.text) < 2000  # a 64 KiB filter is cut short


def test_the_deepest_filter_an_broker_takes_is_kept(tmp_path):
    deep = "/".join(["l"] * 128)
    assert load(tmp_path, {"next": 10, "subscribed": {deep: 5}}).held == {deep: 5}


def test_a_new_identifier_skips_those_held_after_a_wrap(tmp_path):
    ids = load(tmp_path, {"next": MAX_SUBSCRIPTION_ID, "subscribed": {"a": 1, "b": 3}})
    assert ids.assign("x", "x") == MAX_SUBSCRIPTION_ID
    assert ids.assign("y", "y") == 2
    assert ids.assign("z", "z") == 4


def test_a_new_identifier_skips_those_retired():
    ids = SubscriptionIds()
    ids._next = 5
    ids.assign("a", "a")
    ids.forget("a")  # unsubscribed; a copy the broker queued may still come
    ids._next = 5
    assert ids.assign("b", "b") == 6


def test_the_random_start_leaves_room_below_the_largest():
    starts = {SubscriptionIds().assign("a", "a") for _ in range(50)}
    assert all(1 << 20 <= s <= 1 << 27 for s in starts) and len(starts) > 1


# -- copies of retired subscriptions ------------------------------------------------------------


def test_a_retired_copy_names_the_filters_subscribed_before_it_that_match():
    ids = SubscriptionIds()
    ids._next = 10
    ids.assign("p/#", "p/#")  # 10
    ids.assign("$share/g/p/s/+", "p/s/+")  # 11
    ids.assign("p/+/1", "p/+/1")  # 12
    ids.assign("q/#", "q/#")  # 13
    ids.release("$share/g/p/s/+")
    assert ids.retired == {11: "p/s/+"} and 11 not in ids.routes
    # p/# was there first: its copy was queued too; p/+/1 came later: it has no copy
    assert ids.retired_routes(11, "p/s/1") == (RETIRED, "p/s/+", "p/#")
    assert ids.retired_routes(11, "x/1") == (RETIRED, "p/s/+")
    assert ids.retired_routes(10, "p/s/1") == ()  # not retired: its own route
    ids.forget("$share/g/p/s/+")  # unsubscribed: still known for the rest of the process
    assert ids.retired_routes(11, "p/s/1") == (RETIRED, "p/s/+", "p/#")


def test_filters_held_in_the_file_are_retired_until_a_rule_wants_them(tmp_path):
    ids = load(tmp_path, {"next": 30, "subscribed": {"p/#": 20, "p/s/+": 21, "p/+": 22}})
    ids.assign("p/#", "p/#")
    ids.assign("p/t/#", "p/t/#")  # 30
    assert ids.retired == {21: "p/s/+", 22: "p/+"}
    assert ids.retired_routes(21, "p/s/1") == (RETIRED, "p/s/+", "p/#")
    assert ids.retired_routes(22, "p/t") == (RETIRED, "p/+", "p/#")  # p/t/# came later


def test_once_the_identifiers_wrapped_a_retired_copy_goes_by_its_topic(tmp_path):
    ids = SubscriptionIds()
    ids._next = MAX_SUBSCRIPTION_ID - 1
    ids.assign("p/s/+", "p/s/+")
    ids.assign("a", "a")
    ids.assign("p/#", "p/#")  # 1: later, but lower
    ids.release("p/s/+")
    assert ids.retired_routes(MAX_SUBSCRIPTION_ID - 1, "p/s/1") == (RETIRED, "p/s/+")
    # and the next run knows it too
    ids.path = tmp_path / "s.json"
    ids.save()
    again = SubscriptionIds(ids.path)
    assert again.retired_routes(MAX_SUBSCRIPTION_ID - 1, "p/s/1") == (RETIRED, "p/s/+")


def test_a_file_whose_next_is_not_past_its_identifiers_says_nothing_of_their_order(tmp_path):
    ids = load(tmp_path, {"next": 5, "subscribed": {"p/s/+": 9, "p/#": 3}})
    ids.assign("p/#", "p/#")
    assert ids.retired_routes(9, "p/s/1") == (RETIRED, "p/s/+")


def test_log_lines_name_twenty_filters_and_count_the_rest():
    assert listing([f"f/{i}" for i in range(3)]) == "f/0, f/1, f/2"
    line = listing([f"f/{i}" for i in range(100_000)])
    assert line.startswith("f/0, f/1,") and line.endswith("f/19 and 99980 more")


def test_copies_that_come_before_the_filters_are_subscribed_again_are_told_apart(tmp_path):
    # right after a connect the broker sends what it queued, before the rules' filters are
    # subscribed again: p/# (held) was there before p/s/+ (held, no rule wants it now)
    ids = load(tmp_path, {"next": 30, "subscribed": {"p/#": 20, "p/s/+": 21}})
    assert ids.retired_routes(20, "p/s/1") == (RETIRED, "p/#")
    assert ids.retired_routes(21, "p/s/1") == (RETIRED, "p/s/+", "p/#")
    ids.session_lost()  # the broker holds nothing from before
    assert ids.retired_routes(21, "p/s/1") == (RETIRED, "p/s/+")

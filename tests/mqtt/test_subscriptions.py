"""The subscription identifiers of a session, and what it remembers of them across runs."""

from __future__ import annotations

import json
import logging

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqferry._config.models import MqttConfig
from mqferry._mqtt import subscriptions
from mqferry._mqtt.codec import MAX_SUBSCRIPTION_ID
from mqferry._mqtt.control import Connack
from mqferry._mqtt.protocol import MqttProtocol
from mqferry._mqtt.subscriptions import Subscriber, SubscriptionIds
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

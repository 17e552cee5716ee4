"""Which routes the connector gives a copy, by the subscription it was sent for (no broker)."""

from mqferry._config.models import MqttConfig
from mqferry._mqtt.client import MqttConnector
from mqferry._mqtt.codec import RETIRED, InMessage


def test_a_copy_of_a_retired_subscription_names_the_filters_subscribed_before_it():
    got: list[tuple[str, ...]] = []
    conn = MqttConnector(config=MqttConfig(), handler=lambda m, _t: got.append(m.routes))
    ids = conn.subscriber.ids
    ids._next = 10
    ids.assign("p/#", "p/#")  # 10
    ids.assign("p/s/+", "p/s/+")  # 11
    ids.release("p/s/+")  # no rule wants it now; the broker may have copies queued for it
    for sid in (10, 11, 99):
        conn._on_message(InMessage("p/s/1", b"x", qos=0, retain=False, dup=False, mid=0,
                                   properties=None, sub_ids=(sid,)))
    # its own filter's; retired (p/# has a copy of its own); unknown: by the topic
    assert got == [("p/#",), (RETIRED, "p/s/+", "p/#"), ()]

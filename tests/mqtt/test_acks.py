import asyncio

from mqferry._mqtt.acks import AckWindow


def make():
    sent = []
    return AckWindow(lambda acks: sent.extend(mid for mid, _ in acks)), sent


def test_acks_go_out_in_arrival_order_even_when_secured_out_of_order():
    window, sent = make()
    t1, t2, t3 = (window.open(mid, 1) for mid in (1, 2, 3))
    for t in (t1, t2, t3):
        t.hold()
        t.seal()
    t3.release()
    t2.release()
    assert sent == []
    t1.release()
    assert sent == [1, 2, 3]
    assert len(window) == 0


def test_a_message_waits_for_every_action():
    window, sent = make()
    t = window.open(7, 1)
    t.hold()
    t.hold()
    t.seal()
    t.release()
    assert sent == []
    t.release()
    assert sent == [7]


def test_a_message_no_rule_wanted_is_acked_on_seal():
    window, sent = make()
    window.open(9, 1).seal()
    assert sent == [9]


def test_synchronous_securing_before_seal_does_not_ack_early():
    window, sent = make()
    t = window.open(4, 1)
    t.hold()
    t.release()  # the first action secured at once
    assert sent == []
    t.hold()  # a second action
    t.seal()
    assert sent == []
    t.release()
    assert sent == [4]


def test_reset_forgets_pending_and_never_acks_an_old_connection():
    window, sent = make()
    old = window.open(1, 1)
    old.hold()
    old.seal()
    assert window.reset() == 1
    new = window.open(1, 1)  # the broker redelivers with a mid of the new connection
    old.release()
    assert sent == []
    new.seal()
    assert sent == [1]


def lingering(sent: list[int]) -> AckWindow:
    return AckWindow(lambda acks: sent.extend(mid for mid, _ in acks), deferred=True,
                     linger=0.05, linger_below=3)


async def test_settle_sends_a_lingering_run_at_once():
    # (before a DISCONNECT: what was acknowledged must not wait out the linger)
    sent: list[int] = []
    window = lingering(sent)
    window.open(1, 1).seal()
    await asyncio.sleep(0)
    assert sent == []
    window.settle()
    assert sent == [1]
    await asyncio.sleep(0.1)
    assert sent == [1]  # the cancelled timer sends nothing more


async def test_reset_cancels_a_lingering_run():
    sent: list[int] = []
    window = lingering(sent)
    window.open(1, 1).seal()
    assert window.reset() == 1
    await asyncio.sleep(0.1)
    assert sent == []


async def test_a_lingering_run_leaves_with_the_turn_once_enough_are_pending():
    sent: list[int] = []
    window = lingering(sent)
    window.open(1, 1).seal()
    window.open(2, 1).seal()
    await asyncio.sleep(0)
    assert sent == []  # 2 pending, below 3
    window.open(3, 1).seal()
    await asyncio.sleep(0)
    assert sent == [1, 2, 3]


async def test_linger_needs_deferred_acks():
    sent: list[int] = []
    window = AckWindow(lambda acks: sent.extend(mid for mid, _ in acks), linger=0.05)
    window.open(1, 1).seal()
    assert sent == [1]

"""The SUBSCRIBE and UNSUBSCRIBE packets of one MQTT connection that wait for their acks.

Each filter is subscribed in a SUBSCRIBE of its own (a subscription identifier names every filter
of its packet, see :mod:`mqferry._mqtt.subscriptions`), so a connect with 10,000 filters sends
10,000 packets. The packets of a batch leave in one write and their acks are awaited together:
one round trip, not one per packet (benchmarks/RESULTS.md, "Subscribing in one write"). Each
packet keeps its own answer, so a filter the broker refuses is still known alone.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence

from mqferry._errors import MqttUnavailable
from mqferry._mqtt import control

__all__ = ["Requests"]


class _Batch:
    """The packets written together and the broker's answers to them so far."""

    __slots__ = ("answers", "future", "left", "mids")

    def __init__(self, future: asyncio.Future[list[list[int]]], size: int) -> None:
        self.future = future
        self.answers: list[list[int]] = [[] for _ in range(size)]
        self.left = size
        self.mids: list[int] = []

    def answered(self, index: int, codes: list[int]) -> None:
        self.answers[index] = codes
        self.left -= 1
        if not self.left and not self.future.done():
            self.future.set_result(self.answers)


class Requests:
    """The SUBSCRIBE and UNSUBSCRIBE requests of one connection, and those waiting for their acks
    (by packet identifier).

    Args:
        loop: the connection's event loop.
        next_mid: a free packet identifier (publishes and requests share them); it must skip
            the keys of :attr:`waiting`.
        send: writes the bytes of a batch now, and reads on (their acks must be read).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, next_mid: Callable[[], int],
                 send: Callable[[bytes], None]) -> None:
        self._loop = loop
        self._next_mid = next_mid
        self._send = send
        #: packet identifier -> the batch waiting for its ack, and its place in the batch
        self.waiting: dict[int, tuple[_Batch, int]] = {}

    async def subscribe(self, topics: Sequence[tuple[str, int]], *, sub_id: int = 0,
                        timeout: float | None = None) -> list[int]:
        """Subscribe (with the subscription identifier ``sub_id`` unless it is 0); returns the
        broker's reason codes, one per filter.

        Raises:
            MqttUnavailable: no SUBACK within ``timeout`` seconds, or the connection is gone.
        """
        [codes] = await self.send(
            [functools.partial(control.subscribe_packet, topics=topics, sub_id=sub_id)], timeout)
        return codes

    async def subscribe_each(self, subscriptions: Sequence[tuple[str, int, int]], *,
                             timeout: float | None = None) -> list[list[int]]:
        """Subscribe each ``(filter, qos, sub_id)`` in a SUBSCRIBE of its own, all written
        together; returns each SUBACK's reason codes (one, for its filter), in order.

        Raises:
            MqttUnavailable: not every SUBACK within ``timeout`` seconds, or the connection is
                gone.
        """
        return await self.send(
            [functools.partial(control.subscribe_packet, topics=((flt, qos),), sub_id=sub_id)
             for flt, qos, sub_id in subscriptions], timeout)

    async def unsubscribe(self, topics: Sequence[str], *,
                          timeout: float | None = None) -> list[int]:
        """Unsubscribe; returns the broker's reason codes, one per filter.

        Raises:
            MqttUnavailable: no UNSUBACK within ``timeout`` seconds, or the connection is gone.
        """
        [codes] = await self.send(
            [functools.partial(control.unsubscribe_packet, topics=topics)], timeout)
        return codes

    async def send(self, packets: Sequence[Callable[[int], bytes]],
                   timeout: float | None) -> list[list[int]]:
        """Write ``packets`` together, each encoded for a packet identifier of its own; returns
        the broker's reason codes for each, in order.

        Raises:
            MqttUnavailable: not every answer came within ``timeout`` seconds, or the connection
                is gone.
            ValueError: a packet cannot be encoded, or no packet identifier is free (nothing
                was written).
        """
        batch = _Batch(self._loop.create_future(), len(packets))
        if not packets:
            return batch.answers
        waiting, data = self.waiting, []
        try:
            for index, packet in enumerate(packets):
                mid = self._next_mid()
                waiting[mid] = (batch, index)
                batch.mids.append(mid)
                data.append(packet(mid))
            self._send(b"".join(data))
            async with asyncio.timeout(timeout):
                return await batch.future
        except TimeoutError:
            raise MqttUnavailable("Operation timed out (no answer from the broker)") from None
        finally:
            if batch.left:  # some never answered (or were never sent): their ids are free
                for mid in batch.mids:
                    waiting.pop(mid, None)

    def answered(self, body: bytes) -> None:
        """Hand a SUBACK's or UNSUBACK's reason codes to the request that waits for them.

        Raises:
            PacketError: the packet is malformed.
        """
        mid, codes = control.suback_codes(body)
        entry = self.waiting.pop(mid, None)
        if entry is not None:
            entry[0].answered(entry[1], codes)

    def fail(self, exc: BaseException) -> None:
        """The connection is gone: every request waiting fails with ``exc``."""
        batches = {batch for batch, _ in self.waiting.values()}
        self.waiting.clear()  # in place: the connection reads it for every packet id it takes
        for batch in batches:
            if not batch.future.done():
                batch.future.set_exception(exc)

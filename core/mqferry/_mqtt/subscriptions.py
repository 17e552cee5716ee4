"""The subscriptions of one MQTT session: their identifiers, and what the broker may still hold.

**One copy per subscription.** A broker sends a message once for every subscription of the
session it matches (Mosquitto does; MQTT 5 allows it), so with rules on ``t/#`` and ``t/+`` a
message on ``t/1`` arrives twice. Each filter is therefore subscribed on its own with a
subscription identifier of its own, and every copy names the subscription it came for; the
rules of that filter take it, and a rule whose several filters match the topic takes only the
copy of the first of them (:meth:`mqferry._runtime.routing.Routing.for_routes`). Each rule sees
each message once, as in EMQX.

**What a persistent session keeps.** The broker keeps a persistent session's subscriptions
while mqferry is away, so a filter no rule uses any more would go on delivering. The filters
subscribed (as sent, with a shared-subscription prefix) are written to a file in the data
directory; on a connection that finds its session, those no rule wants now are unsubscribed.
The identifiers go on from the file too, so a copy the broker queued in an earlier run is never
taken for another filter's. Without the file (a first run, another data directory) the
identifiers start at a random point, far from where an earlier run's were likely to be.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable
from pathlib import Path

import orjson

from mqferry._config.models import MqttConfig
from mqferry._mqtt import codec
from mqferry._mqtt.codec import MAX_SUBSCRIPTION_ID
from mqferry._mqtt.control import Connack
from mqferry._mqtt.protocol import MqttProtocol

__all__ = ["LISTED", "Subscriber", "SubscriptionIds", "listing"]

log = logging.getLogger(__name__)

#: How many filters a log line names; the rest are counted ("and 99980 more").
LISTED = 20


def listing(filters: list[str]) -> str:
    """``filters`` for a log line: the first :data:`LISTED`, and how many more there are."""
    shown = ", ".join(filters[:LISTED])
    more = len(filters) - LISTED
    return f"{shown} and {more} more" if more > 0 else shown


class SubscriptionIds:
    """The identifiers of a session's subscriptions, kept in ``path`` (none: in memory only).

    Keys are the filters as subscribed (``$share/<group>/...`` included); :meth:`route` gives a
    copy's filter as the rules spell it.

    Args:
        path: the file the state is kept in (written whole, through a temporary file).
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        #: filter as subscribed -> its identifier
        self.ids: dict[str, int] = {}
        #: identifier -> the rules' spelling of its filter, as a copy's routes
        #: (:attr:`mqferry._mqtt.codec.InMessage.routes`)
        self.routes: dict[int, tuple[str]] = {}
        #: filters an earlier connection subscribed that may still be at the broker
        self.held: dict[str, int] = {}
        self._next = 0
        self._load()
        if not self._next:
            self._next = random.randint(1 << 20, 1 << 27)

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            state = orjson.loads(self.path.read_bytes())
            held = {str(f): int(i) for f, i in state["subscribed"].items()}
            self._next = int(state["next"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("MQTT subscriptions: ignoring %s (%s); filters no rule uses any more "
                        "stay subscribed if the broker kept the session", self.path, exc)
            return
        self.held = held

    def assign(self, wire: str, flt: str) -> int:
        """The identifier to subscribe ``wire`` (the filter ``flt`` of the rules) with."""
        ident = self.ids.get(wire) or self.held.get(wire)
        if not ident:
            ident = self._next
            self._next = ident % MAX_SUBSCRIPTION_ID + 1
        self.ids[wire] = ident
        self.held.pop(wire, None)
        self.routes[ident] = (flt,)
        return ident

    def release(self, wire: str) -> None:
        """No rule wants ``wire`` now, but the broker may hold it until it is unsubscribed."""
        ident = self.ids.pop(wire, None)
        if ident:
            self.held[wire] = ident

    def forget(self, wire: str) -> None:
        """``wire`` is no longer subscribed (or the broker lost the session)."""
        ident = self.ids.pop(wire, None) or self.held.pop(wire, None)
        self.held.pop(wire, None)
        if ident:
            self.routes.pop(ident, None)

    def session_lost(self) -> None:
        """The broker has no session: it holds no subscription from before."""
        for wire in list(self.held):
            self.forget(wire)

    def stale(self) -> list[str]:
        """Filters an earlier connection subscribed that are not subscribed now."""
        return sorted(w for w in self.held if w not in self.ids)

    def save(self) -> None:
        """Write the subscribed filters and the next identifier (a failure is logged)."""
        if self.path is None:
            return
        subscribed = {**{w: i for w, i in self.held.items() if w not in self.ids}, **self.ids}
        data = orjson.dumps({"next": self._next, "subscribed": subscribed})
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            tmp.replace(self.path)
        except OSError as exc:
            log.warning("MQTT subscriptions: cannot write %s (%s); after a restart, filters no "
                        "rule uses any more may stay subscribed", self.path, exc)


class Subscriber:
    """Subscribes one session to the rules' filters, each with an identifier of its own.

    Args:
        config: the ``mqtt`` section (QoS, shared-subscription group, timeout).

    Attributes:
        ids: the identifiers, and what the broker may hold (an app gives them a file).
        refused: filters the broker refused. While there are any, copies are routed by their
            topic, not by their subscription: a rule whose first matching filter was refused
            would miss the copies of its other filters.
    """

    def __init__(self, config: MqttConfig) -> None:
        self.config = config
        self.ids = SubscriptionIds()
        self.refused: set[str] = set()
        #: Whether the broker takes subscription identifiers (its CONNACK says).
        self.use_ids = True

    def wire(self, flt: str) -> str:
        """``flt`` as subscribed: with the shared-subscription prefix if there is a group."""
        group = self.config.share_group
        return f"$share/{group}/{flt}" if group and not flt.startswith("$") else flt

    def connected(self, connack: Connack) -> None:
        """A new connection: what the broker takes, and whether it kept the session."""
        self.use_ids = connack.get("SubscriptionIdentifierAvailable", 1) != 0
        if not self.use_ids:
            log.warning("the MQTT broker takes no subscription identifiers: a message whose "
                        "topic matches several subscribed filters reaches their rules once "
                        "per filter")
        if not connack.session_present:
            self.ids.session_lost()

    def drop(self, filters: Iterable[str]) -> list[str]:
        """No rule wants ``filters`` now; returns them as subscribed, to unsubscribe."""
        wires = sorted(self.wire(f) for f in filters)
        for flt in filters:
            self.refused.discard(flt)
        for wire in wires:
            self.ids.release(wire)
        if wires:
            self.ids.save()
        return wires

    async def subscribe(self, proto: MqttProtocol, filters: Iterable[str]) -> None:
        """Subscribe ``filters``; a refusal is logged and kept in :attr:`refused`.

        Raises:
            MqttUnavailable: no answer in time, or the connection is gone.
        """
        qos = int(self.config.subscribe_qos)
        wanted = sorted(filters)
        if not wanted:
            return
        timeout = self.config.connect_timeout
        wires = [self.wire(f) for f in wanted]
        if self.use_ids:
            # One SUBSCRIBE per filter: an identifier names every filter of its packet.
            ids = self.ids
            answers = await asyncio.gather(*(
                proto.subscribe([(wire, qos)], sub_id=ids.assign(wire, flt), timeout=timeout)
                for wire, flt in zip(wires, wanted, strict=True)))
            codes = [a[0] if a else 0x80 for a in answers]
            ids.save()
        else:
            codes = await proto.subscribe([(w, qos) for w in wires], timeout=timeout)
        for flt, wire, code in zip(wanted, wires, codes, strict=False):
            if code >= 0x80:
                self.refused.add(flt)
                log.warning("the MQTT broker refused the subscription to %s: %s", wire,
                            codec.reason_name(codec.SUBACK, code))
            else:
                self.refused.discard(flt)
        log.info("subscribed to %s", listing(wires))

    async def unsubscribe(self, proto: MqttProtocol, wires: list[str]) -> None:
        """Unsubscribe ``wires`` (filters as subscribed, see :meth:`drop`).

        Raises:
            MqttUnavailable: no answer in time, or the connection is gone.
        """
        if not wires:
            return
        await proto.unsubscribe(wires, timeout=self.config.connect_timeout)
        for wire in wires:
            self.ids.forget(wire)
        self.ids.save()

    async def clean(self, proto: MqttProtocol) -> None:
        """Unsubscribe what the broker kept of the session that no rule wants now."""
        stale = self.ids.stale()
        if stale:
            await self.unsubscribe(proto, stale)
            log.info("unsubscribed from %s: no rule uses them now (the broker kept them from "
                     "an earlier connection of the session)", listing(stale))

"""The subscriptions of one MQTT session: their identifiers, and what the broker may still hold.

**One copy per subscription.** A broker sends a message once for every subscription of the
session it matches (Mosquitto does; MQTT 5 allows it), so with rules on ``t/#`` and ``t/+`` a
message on ``t/1`` arrives twice. Each filter is therefore subscribed on its own with a
subscription identifier of its own (the SUBSCRIBE packets of a change, or of a connect, leave in
one write: :mod:`mqferry._mqtt.requests`), and every copy names the subscription it came for; the
rules of that filter take it, and a rule whose several filters match the topic takes only the
copy of the one subscribed first (:meth:`~mqferry._runtime.routing.Routing.for_route`): each
rule sees each message once, as in EMQX.

**What a persistent session keeps.** The broker keeps a persistent session's subscriptions
while mqferry is away, so a filter no rule uses any more would go on delivering. The filters
subscribed (as sent, with a shared-subscription prefix) are written to a file in the data
directory; on a connection that finds its session, those no rule wants now are unsubscribed.
Identifiers go on from the file (without one, from a random point), so a copy the broker queued
in an earlier run is never taken for another filter's.

**The file is checked, not trusted.** An entry whose filter a broker would refuse (an
UNSUBSCRIBE of it would end the connection, at every reconnect), whose identifier is out of
range, or whose identifier another entry holds too, is dropped with a warning: a copy the broker
still sends for it goes by its topic. ``next`` is put past every identifier held, and a new
subscription never takes an identifier held or retired.

**Copies of retired subscriptions.** Identifiers are allocated in increasing order, so of two
subscriptions the one with the lower identifier was there first. A copy the broker queued for a
filter no rule wants now (a retired one) goes to each rule its topic matches, except a rule with
a filter subscribed now that matches the topic too and has a lower identifier: that filter was
subscribed all the while the retired one was, so the broker queued a copy for it as well. A rule
whose filter changed (``t/+`` to ``t/#``) still gets what was queued only under the old filter.
Once the identifiers have wrapped, their order says nothing: such copies go by topic.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from pathlib import Path

import orjson

from mqferry._config.models import MqttConfig
from mqferry._mqtt import codec
from mqferry._mqtt.codec import MAX_SUBSCRIPTION_ID, RETIRED
from mqferry._mqtt.control import Connack
from mqferry._mqtt.protocol import MqttProtocol
from mqferry._mqtt.strings import filter_problem, string_problem
from mqferry._rules.topic import TopicIndex

__all__ = ["LISTED", "Subscriber", "SubscriptionIds", "listing"]

log = logging.getLogger(__name__)

#: The most SUBSCRIBE packets written together: their packet identifiers (65,535 on a connection,
#: shared with the publishes in flight) are taken until their SUBACKs come. Each further batch
#: waits for the last one's SUBACKs: 10,000 filters in batches of 1,000 took 0.48 s against
#: Mosquitto, in one 0.15 s.
BATCH = 16384

#: How many filters a log line names; the rest are counted ("and 99980 more").
LISTED = 20


def listing(filters: list[str]) -> str:
    """``filters`` for a log line: the first :data:`LISTED`, and how many more there are."""
    shown = ", ".join(filters[:LISTED])
    more = len(filters) - LISTED
    return f"{shown} and {more} more" if more > 0 else shown


def _short(text: str, limit: int = 80) -> str:
    """``text`` quoted for a warning, cut short when it is long (a filter may be 64 KiB)."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def rules_filter(wire: str) -> str:
    """The filter of the rules that ``wire`` (a filter as subscribed) was subscribed for."""
    if wire.startswith("$share/"):
        parts = wire.split("/", 2)
        if len(parts) == 3:
            return parts[2]
    return wire


def _is_id(value: object) -> bool:
    """Whether ``value`` (read from JSON) is a subscription identifier."""
    return (isinstance(value, int) and not isinstance(value, bool)
            and 1 <= value <= MAX_SUBSCRIPTION_ID)


def _entry_problem(wire: object, ident: object) -> str | None:
    """Why an entry of the state file cannot be held, or ``None`` when it can."""
    if not isinstance(ident, int) or isinstance(ident, bool):
        return f"its identifier {ident!r} is not an integer"
    if not _is_id(ident):
        return f"its identifier {ident} is not within 1-{MAX_SUBSCRIPTION_ID}"
    assert isinstance(wire, str)  # JSON object keys are strings
    if wire.startswith("$share/") and (len(wire.split("/", 2)) < 3 or not wire.split("/")[1]):
        return "it is not a valid shared subscription"
    return string_problem(wire) or filter_problem(rules_filter(wire))


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
        #: the rules' spelling of each filter subscribed -> its identifier (``Routing.ranks``)
        self.ranks: dict[str, int] = {}
        #: filters an earlier connection subscribed that may still be at the broker
        self.held: dict[str, int] = {}
        #: identifier -> the rules' spelling of its filter, for the subscriptions no rule wants
        #: now (held, or unsubscribed by this process): the broker may still send copies
        #: queued for them. Kept for the life of the process; never given out again.
        self.retired: dict[int, str] = {}
        #: Whether a lower identifier means an earlier subscription (false once they wrapped).
        self.ordered = True
        #: filter as subscribed -> its identifier, for all the broker may hold (subscribed, or
        #: held from before); indexed by the rules' spelling
        self._at_broker: dict[str, int] = {}
        self._index: TopicIndex[str] = TopicIndex()
        #: identifiers of entries dropped from the file: the broker may hold them still
        self._dropped: set[int] = set()
        self._next = 0
        #: whether the file may differ from the state (a filter or identifier came or went)
        self._dirty = True
        self._load()
        if not self._next:
            # In the lower half of the range: increasing order holds for 2**27 subscriptions.
            self._next = random.randint(1 << 20, 1 << 27)

    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            state = orjson.loads(self.path.read_bytes())
            subscribed = state["subscribed"]
            nxt = state["next"]
            if not isinstance(subscribed, dict):
                raise TypeError("'subscribed' is not an object")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("MQTT subscriptions: ignoring %s (%s); filters no rule uses any more "
                        "stay subscribed if the broker kept the session", self.path, exc)
            return
        owners: dict[int, list[str]] = {}
        for wire, ident in subscribed.items():
            problem = _entry_problem(wire, ident)
            if problem is not None:
                if _is_id(ident):
                    self._dropped.add(ident)
                log.warning("MQTT subscriptions: %s: dropped the entry %s: %s; copies the "
                            "broker still sends for it go by their topic", self.path,
                            _short(wire), problem)
                continue
            owners.setdefault(ident, []).append(wire)
        for ident, wires in owners.items():
            if len(wires) > 1:
                log.warning("MQTT subscriptions: %s: dropped the entries %s: they share the "
                            "identifier %d; copies the broker sends for them go by their topic",
                            self.path, ", ".join(_short(w) for w in wires), ident)
                self._dropped.add(ident)
                continue
            self.held[wires[0]] = self.ranks[rules_filter(wires[0])] = ident
            self.retired[ident] = rules_filter(wires[0])
            self._at_broker[wires[0]] = ident
            self._index.add(rules_filter(wires[0]), wires[0])
        top = max((*self.held.values(), *self._dropped), default=0)
        if state.get("wrapped") is True:
            self.ordered = False
        if not _is_id(nxt):
            log.warning("MQTT subscriptions: %s: 'next' is %r, not an identifier (1-%d); "
                        "going on past the identifiers held", self.path, nxt,
                        MAX_SUBSCRIPTION_ID)
            nxt = top + 1 if top else 0
        elif nxt <= top:
            # Wrapped, or edited: which subscription came first can no longer be told.
            log.warning("MQTT subscriptions: %s: 'next' is %d, not past the identifiers held "
                        "(up to %d); going on from %d", self.path, nxt, top, top + 1)
            nxt = top + 1
            self.ordered = False
        if nxt > MAX_SUBSCRIPTION_ID:
            nxt = 1
            self.ordered = False
        self._next = nxt

    def assign(self, wire: str, flt: str) -> int:
        """The identifier to subscribe ``wire`` (the filter ``flt`` of the rules) with."""
        ident = self.ids.get(wire) or self.held.get(wire)
        if not ident:
            ident = self._take()
            self._dirty = True
        self.ids[wire] = ident
        self.held.pop(wire, None)
        self.retired.pop(ident, None)
        self.routes[ident] = (flt,)
        self.ranks[flt] = ident
        if wire not in self._at_broker:
            self._index.add(rules_filter(wire), wire)
        self._at_broker[wire] = ident
        return ident

    def _take(self) -> int:
        """A new identifier: the next one that no subscription holds and none retired."""
        routes, retired, dropped = self.routes, self.retired, self._dropped
        for _ in range(MAX_SUBSCRIPTION_ID):
            ident = self._next
            if ident == MAX_SUBSCRIPTION_ID:
                self.ordered = False  # the next ones are lower, yet later
            self._next = ident % MAX_SUBSCRIPTION_ID + 1
            if ident not in routes and ident not in retired and ident not in dropped:
                return ident
        raise RuntimeError("every MQTT subscription identifier is taken")

    def _retire(self, wire: str, ident: int) -> None:
        flt = self.retired[ident] = self.routes.pop(ident, (rules_filter(wire),))[0]
        if self.ranks.get(flt) == ident:
            del self.ranks[flt]

    def release(self, wire: str) -> None:
        """No rule wants ``wire`` now, but the broker may hold it until it is unsubscribed."""
        ident = self.ids.pop(wire, None)
        if ident:
            self.held[wire] = ident
            self._retire(wire, ident)

    def forget(self, wire: str) -> None:
        """``wire`` is no longer subscribed (or the broker lost the session)."""
        ident = self.ids.pop(wire, None) or self.held.pop(wire, None)
        self.held.pop(wire, None)
        if ident:
            self._retire(wire, ident)
            self._dirty = True
        if self._at_broker.pop(wire, None) is not None:
            self._index.remove(rules_filter(wire), wire)

    def session_lost(self) -> None:
        """The broker has no session: it holds no subscription from before."""
        for wire in list(self.held):
            self.forget(wire)

    def retired_routes(self, ident: int, topic: str) -> tuple[str, ...]:
        """The routes of a copy on ``topic`` sent for the retired subscription ``ident``.

        :data:`~mqferry._mqtt.codec.RETIRED`, the rules' spelling of its filter, then the
        rules' filters the broker holds (those subscribed, and those held from before, whose
        copies may come before they are subscribed again) that were subscribed before it and
        match ``topic``: a rule with one of them takes that filter's copy instead. None of
        those when the order of identifiers is not known.
        """
        flt = self.retired.get(ident)
        if flt is None:
            return ()
        if not self.ordered:
            return (RETIRED, flt)
        at = self._at_broker
        return (RETIRED, flt, *sorted({rules_filter(w) for w in self._index.match(topic)
                                       if at[w] < ident}))

    def stale(self) -> list[str]:
        """Filters an earlier connection subscribed that are not subscribed now."""
        return sorted(w for w in self.held if w not in self.ids)

    def save(self) -> None:
        """Write the subscribed filters and the next identifier (a failure is logged).

        Not when nothing the file holds changed since it was last written: a filter released
        (still held) or subscribed again with its identifier writes the same file (10,000
        filters: 0.7 ms).
        """
        if self.path is None or not self._dirty:
            return
        subscribed = {**{w: i for w, i in self.held.items() if w not in self.ids}, **self.ids}
        state: dict[str, object] = {"next": self._next, "subscribed": subscribed}
        if not self.ordered:
            state["wrapped"] = True  # the identifiers held are not in the order subscribed
        data = orjson.dumps(state)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            tmp.replace(self.path)
            self._dirty = False
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
            each = [(wire, qos, ids.assign(wire, flt))
                    for wire, flt in zip(wires, wanted, strict=True)]
            codes = []
            requests = proto.requests
            for start in range(0, len(each), BATCH):
                answers = await requests.subscribe_each(each[start:start + BATCH], timeout=timeout)
                codes += [a[0] if a else 0x80 for a in answers]
            ids.save()
        else:
            codes = await proto.requests.subscribe([(w, qos) for w in wires], timeout=timeout)
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
        await proto.requests.unsubscribe(wires, timeout=self.config.connect_timeout)
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

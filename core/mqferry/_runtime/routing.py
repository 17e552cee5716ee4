"""Which running rules an MQTT message or a source event goes to.

A :class:`Routing` holds the running rules with two indexes: the topic index (MQTT topic filter
-> rules) and the event map (event name -> rules). A source event has two names,
``$bridges/<type>:<name>`` and ``$sources/<type>:<name>`` (:mod:`mqferry._rules.source_names`):
a rule is indexed under both. It also counts how many rules use each topic filter, so adding or
removing one rule says which MQTT subscriptions to add or remove without a walk over the others.

A copy of a message that names the subscription it came for (:attr:`InMessage.routes
<mqferry._mqtt.codec.InMessage.routes>`) goes to that filter's rules only (:meth:`for_route`):
the broker sends a copy for each matching subscription, and each rule takes one of them. A copy
queued for a subscription no rule wants now goes to the rules its topic matches but for those
that take a copy of their own (:meth:`for_retired`).

A configuration change builds a new :class:`Routing` and the app swaps it in one step of the
event loop, so a message sees either the old rules or the new ones; a change of one rule edits
the routing in place (:meth:`Routing.add`, :meth:`Routing.remove`), replacing rather than
appending to the event map's lists, so a dispatch holding the old list is not disturbed.
"""

from __future__ import annotations

from collections.abc import Mapping

from mqferry._rules import TopicIndex, topic_matches
from mqferry._rules.source_names import aliases
from mqferry._runtime.rules import RuntimeRule

__all__ = ["MATCH_CACHE_SIZE", "MATCH_CACHE_TOPIC", "Routing", "event_aliases"]

event_aliases = aliases

#: How many topics' matches :meth:`Routing.match` remembers; past it the memory starts afresh.
MATCH_CACHE_SIZE = 4096
#: Longer topics are matched every time, not remembered: a topic may be 64 KiB long, and 4096
#: of those would hold 256 MiB.
MATCH_CACHE_TOPIC = 256


class Routing:
    """The running rules, indexed by topic filter and by event name.

    Args:
        rules: the rules, by id (kept, not copied).
    """

    __slots__ = ("_by_filter", "_events", "_index", "_matches", "_uses", "ranks", "rules")

    def __init__(self, rules: dict[str, RuntimeRule] | None = None,
                 ranks: Mapping[str, int] | None = None) -> None:
        #: The running rules, by id.
        self.rules: dict[str, RuntimeRule] = rules if rules is not None else {}
        #: Each subscribed filter's subscription identifier (the MQTT session's, kept current
        #: by it): a lower one was subscribed earlier. A rule whose several filters match a
        #: topic takes the copy of the one subscribed first: its copies cover every message a
        #: later one's do, and those queued before the later one existed.
        self.ranks: Mapping[str, int] = ranks if ranks is not None else {}
        self._index: TopicIndex[RuntimeRule] = TopicIndex()
        self._events: dict[str, list[RuntimeRule]] = {}
        self._uses: dict[str, int] = {}
        #: the rules of recently seen topics (devices publish on the same topics again and
        #: again; a walk of the filter tree costs ~1 µs per message, a dict lookup ~50 ns)
        self._matches: dict[str, tuple[RuntimeRule, ...]] = {}
        #: filter -> its rules, and whether any of them has other filters
        self._by_filter: dict[str, tuple[tuple[RuntimeRule, ...], bool]] = {}
        for rule in self.rules.values():
            self._route(rule)

    def match(self, topic: str) -> tuple[RuntimeRule, ...]:
        """The rules whose topic filters match the MQTT topic ``topic``."""
        matches = self._matches
        rules = matches.get(topic)
        if rules is None:
            rules = _once(self._index.match(topic))
            if len(topic) <= MATCH_CACHE_TOPIC:
                if len(matches) >= MATCH_CACHE_SIZE:
                    matches.clear()  # many distinct topics: start afresh rather than grow
                matches[topic] = rules
        return rules

    def for_route(self, route: str, topic: str) -> tuple[RuntimeRule, ...]:
        """The rules that take a copy of a message on ``topic`` sent for the subscription to
        ``route``: those of that filter, less the rules that take the copy of another filter
        of theirs that matches the topic too and was subscribed earlier (:attr:`ranks`).

        A filter no rule uses (a subscription on its way out) goes by the topic: at least once.
        """
        entry = self._by_filter.get(route)
        if entry is None:
            return self.match(topic)
        rules, shared = entry
        if not shared:
            return rules
        ranks = self.ranks
        return tuple(r for r in rules if _first_match(r, topic, ranks) == route)

    def for_retired(self, route: str, topic: str,
                    before: tuple[str, ...]) -> tuple[RuntimeRule, ...]:
        """The rules that take a copy of a message on ``topic`` sent for a subscription to
        ``route`` that is not subscribed now (see :data:`mqferry._mqtt.codec.RETIRED`).

        When a rule uses ``route`` (its subscription is about to be made again), as
        :meth:`for_route`. Otherwise the rules the topic matches, less those with a filter in
        ``before``: subscribed before ``route`` was, so the broker queued a copy for it too.
        """
        if route in self._by_filter:
            return self.for_route(route, topic)
        rules = self.match(topic)
        if not before:
            return rules
        return tuple(r for r in rules if not any(f in before for f in r.compiled.topic_filters))

    def for_event(self, name: str) -> list[RuntimeRule] | None:
        """The rules selecting the event ``name`` (``None``: none)."""
        return self._events.get(name)

    def filters(self) -> set[str]:
        """The union of the rules' topic filters: the MQTT subscriptions."""
        return set(self._uses)

    def add(self, rule: RuntimeRule) -> list[str]:
        """Route ``rule``, replacing the rule with its id.

        Returns:
            The topic filters no rule used before: the subscriptions to add.
        """
        if rule.id in self.rules:
            self.remove(rule.id)
        self.rules[rule.id] = rule
        return self._route(rule)

    def remove(self, rid: str) -> list[str]:
        """Stop routing to rule ``rid`` (if it is routed).

        Returns:
            The topic filters no rule uses any more: the subscriptions to remove.
        """
        rule = self.rules.pop(rid, None)
        if rule is None:
            return []
        self._matches.clear()
        for flt in rule.compiled.topic_filters:
            self._index.remove(flt, rule)
        for flt in set(rule.compiled.topic_filters):
            self._set_filter(flt, [r for r in self._by_filter.get(flt, ((), False))[0]
                                   if r is not rule])
        for topic in rule.compiled.event_topics:
            for alias in event_aliases(topic):
                rest = [r for r in self._events.get(alias, ()) if r is not rule]
                if rest:
                    self._events[alias] = rest
                else:
                    self._events.pop(alias, None)
        gone = []
        uses = self._uses
        for flt in set(rule.compiled.topic_filters):
            uses[flt] -= 1
            if not uses[flt]:
                del uses[flt]
                gone.append(flt)
        return sorted(gone)

    def _route(self, rule: RuntimeRule) -> list[str]:
        self._matches.clear()
        for flt in rule.compiled.topic_filters:
            self._index.add(flt, rule)
        for flt in set(rule.compiled.topic_filters):
            self._set_filter(flt, [*self._by_filter.get(flt, ((), False))[0], rule])
        for topic in rule.compiled.event_topics:
            for alias in event_aliases(topic):
                # A new list, not an append: a dispatch holding the old one is not disturbed.
                self._events[alias] = [*self._events.get(alias, ()), rule]
        new = []
        uses = self._uses
        for flt in set(rule.compiled.topic_filters):
            uses[flt] = uses.get(flt, 0) + 1
            if uses[flt] == 1:
                new.append(flt)
        return sorted(new)

    def _set_filter(self, flt: str, rules: list[RuntimeRule]) -> None:
        # A new tuple, not an edit: a dispatch holding the old one is not disturbed.
        if rules:
            shared = any(len(set(r.compiled.topic_filters)) > 1 for r in rules)
            self._by_filter[flt] = (tuple(rules), shared)
        else:
            self._by_filter.pop(flt, None)


def _first_match(rule: RuntimeRule, topic: str, ranks: Mapping[str, int]) -> str | None:
    """The one of ``rule``'s filters matching ``topic`` that was subscribed first (lowest
    identifier in ``ranks``; in sorted order among filters without one)."""
    best: tuple[int, str] | None = None
    for flt in set(rule.compiled.topic_filters):
        if topic_matches(flt, topic):
            key = (ranks.get(flt, _UNRANKED), flt)
            if best is None or key < best:
                best = key
    return None if best is None else best[1]


#: After every subscription identifier (at most 268,435,455).
_UNRANKED = 1 << 28


def _once(rules: list[RuntimeRule]) -> tuple[RuntimeRule, ...]:
    """Each rule once, however many of its filters matched (EMQX runs a rule once a message)."""
    if len(rules) < 2:
        return tuple(rules)
    seen: set[int] = set()
    out: list[RuntimeRule] = []
    for rule in rules:
        if id(rule) not in seen:
            seen.add(id(rule))
            out.append(rule)
    return tuple(out)

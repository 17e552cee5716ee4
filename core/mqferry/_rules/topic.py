"""MQTT topic filter matching and a trie that routes a topic to every filter that matches it."""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["TopicIndex", "topic_matches"]

V = TypeVar("V")


def topic_matches(filter: str, topic: str) -> bool:
    """Whether an MQTT topic matches a topic filter.

    ``+`` matches one level, ``#`` (last) matches the parent level and everything below it, and, as
    the MQTT spec says, a topic starting with ``$`` is not matched by a filter starting with a
    wildcard.

    Args:
        filter: a topic filter such as ``sensors/+/temp`` or ``t/#``.
        topic: a topic name such as ``sensors/1/temp``.
    """
    if topic.startswith("$") and filter[:1] in ("+", "#"):
        return False
    if filter == topic:
        return True
    f_levels = filter.split("/")
    t_levels = topic.split("/")
    n_t = len(t_levels)
    for i, f in enumerate(f_levels):
        if f == "#":
            return i == len(f_levels) - 1
        if i >= n_t:
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == n_t


class _Node(Generic[V]):
    __slots__ = ("children", "hash_values", "values")

    def __init__(self) -> None:
        self.children: dict[str, _Node[V]] = {}
        # Values of filters ending here, and of filters ending in ``/#`` below this node.
        self.values: list[V] = []
        self.hash_values: list[V] = []


class TopicIndex(Generic[V]):
    """A trie over MQTT topic filters.

    Matching walks one branch per topic level (plus the ``+`` and ``#`` branches), so its cost
    depends on the depth of the topic, not on how many filters are stored.

    Example::

        index: TopicIndex[str] = TopicIndex()
        index.add("t/#", "rule1")
        index.match("t/1")  # ["rule1"]
    """

    def __init__(self) -> None:
        self._root: _Node[V] = _Node()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, filter: str, value: V) -> None:
        """Store ``value`` under ``filter``; the same pair may be added more than once."""
        node = self._root
        levels = filter.split("/")
        for i, level in enumerate(levels):
            if level == "#" and i == len(levels) - 1:
                node.hash_values.append(value)
                self._size += 1
                return
            nxt = node.children.get(level)
            if nxt is None:
                nxt = node.children[level] = _Node()
            node = nxt
        node.values.append(value)
        self._size += 1

    def remove(self, filter: str, value: V) -> None:
        """Remove one ``value`` stored under ``filter``.

        Raises:
            KeyError: the pair was not stored.
        """
        path: list[tuple[_Node[V], str]] = []
        node = self._root
        levels = filter.split("/")
        for i, level in enumerate(levels):
            if level == "#" and i == len(levels) - 1:
                bucket = node.hash_values
                break
            nxt = node.children.get(level)
            if nxt is None:
                raise KeyError(filter)
            path.append((node, level))
            node = nxt
        else:
            bucket = node.values
        try:
            bucket.remove(value)
        except ValueError:
            raise KeyError(filter) from None
        self._size -= 1
        # Prune empty branches so a long-running index does not grow with churn.
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.values or child.hash_values or child.children:
                break
            del parent.children[level]

    def match(self, topic: str) -> list[V]:
        """Every value whose filter matches ``topic``, in no particular order."""
        out: list[V] = []
        levels = topic.split("/")
        sys_topic = topic.startswith("$")
        stack: list[tuple[_Node[V], int]] = [(self._root, 0)]
        n = len(levels)
        while stack:
            node, i = stack.pop()
            wild_ok = not (sys_topic and i == 0)
            if node.hash_values and wild_ok:
                out.extend(node.hash_values)
            if i == n:
                out.extend(node.values)
                continue
            children = node.children
            if not children:
                continue
            child = children.get(levels[i])
            if child is not None:
                stack.append((child, i + 1))
            if wild_ok:
                plus = children.get("+")
                if plus is not None:
                    stack.append((plus, i + 1))
        return out

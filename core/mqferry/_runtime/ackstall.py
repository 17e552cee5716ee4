"""Stalled MQTT acknowledgements: how long the oldest unacknowledged message has waited, and who
holds messages.

Sampled (each second by the metrics ticker, and on each status request) rather than timed per
message: the hot path pays nothing. A message's age is from the first sample that saw it at the
head of its session's window.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from mqferry._mqtt.acks import AckWindow
from mqferry._runtime.delivery import Ticket
from mqferry._types import Action

if TYPE_CHECKING:
    from mqferry._runtime.rules import RuntimeRule

__all__ = ["AckStalls", "holders"]


class AckStalls:
    """The head of each session's ack window, with when a sample first saw it there."""

    def __init__(self) -> None:
        # per ack window: its oldest pending message when first seen at the head, and when
        self._seen: dict[int, tuple[Ticket, float]] = {}

    def oldest_wait(self, windows: Iterable[AckWindow], now: float) -> float:
        """Seconds the longest-waiting head of ``windows`` has waited (0 with none pending)."""
        seen: dict[int, tuple[Ticket, float]] = {}
        longest = 0.0
        for window in windows:
            head = window.oldest()
            if head is None:
                continue
            before = self._seen.get(id(window))
            since = before[1] if before is not None and before[0] is head else now
            seen[id(window)] = (head, since)
            longest = max(longest, now - since)
        self._seen = seen
        return longest


def holders(actions: Mapping[str, Action], rules: Mapping[str, RuntimeRule]) -> str:
    """Which actions and rules report holding messages, for a stall's reason."""
    held = []
    for aid, action in actions.items():
        snap = action.metrics.snapshot()
        queued, inflight = int(snap.get("queuing", 0)), int(snap.get("inflight", 0))
        if queued or inflight:
            held.append(f"action {aid} ({queued} queued, {inflight} in flight)")
    for rid, rule in rules.items():
        if rule.pending:
            held.append(f"rule {rid} ({rule.pending} waiting for evaluation)")
    if not held:
        return "no action or rule reports holding messages"
    return "held by " + ", ".join(held)

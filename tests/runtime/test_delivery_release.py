"""A rule delivery always lets go of its message's ticket, however its failure is reported."""

import enum

import pytest

from mqferry._metrics import rule_metrics
from mqferry._runtime.delivery import RuleDelivery, Ticket


class _Reason(enum.Enum):
    BAD = "failed.custom"


class _BrokenRoute:
    def __init__(self) -> None:
        self.calls = 0

    def output_failed(self, event, reason, detail, ticket) -> None:
        self.calls += 1
        raise RuntimeError("dead letter action gone")


def _held() -> Ticket:
    ticket = Ticket(None, 1, 1, 0)
    ticket.hold()
    ticket.seal()
    return ticket


@pytest.mark.parametrize("reason", [None, _Reason.BAD, 42, "failed.render"])
def test_a_failure_with_any_reason_releases_the_ticket(reason):
    ticket = _held()
    metrics = rule_metrics("r")
    RuleDelivery(ticket, metrics, 0.0, None, {"topic": "t"}).failed(reason)
    assert ticket.done and metrics.get("actions.failed") == 1


def test_a_route_that_raises_still_releases_the_ticket():
    ticket, route = _held(), _BrokenRoute()
    delivery = RuleDelivery(ticket, rule_metrics("r"), 0.0, route, {"topic": "t"})
    with pytest.raises(RuntimeError, match="dead letter"):
        delivery.fail("failed.render", "bad")
    assert route.calls == 1 and ticket.done and delivery.settled

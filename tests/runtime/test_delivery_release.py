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


class _Route:
    def __init__(self) -> None:
        self.reasons: list[str] = []

    def output_failed(self, event, reason, detail, ticket) -> None:
        self.reasons.append(reason)


@pytest.mark.parametrize("reason", [None, _Reason.BAD, 42, "failed.render"])
def test_a_failure_with_any_reason_releases_the_ticket(reason):
    ticket, route = _held(), _Route()
    metrics = rule_metrics("r")
    RuleDelivery(ticket, metrics, 0.0, route, {"topic": "t"}).failed(reason)
    assert ticket.done and metrics.get("actions.failed") == 1
    assert route.reasons == (["failed.render"] if reason == "failed.render" else [])


def test_a_route_that_raises_is_logged_and_still_releases_the_ticket(caplog):
    ticket, route = _held(), _BrokenRoute()
    delivery = RuleDelivery(ticket, rule_metrics("r"), 0.0, route, {"topic": "t"})
    delivery.fail("failed.render", "bad")  # not raised into the action settling it
    assert route.calls == 1 and ticket.done and delivery.settled
    assert "reporting a failed output (failed.render) failed" in caplog.text
    assert "dead letter action gone" in caplog.text

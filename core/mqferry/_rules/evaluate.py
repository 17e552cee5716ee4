"""``evaluate_sql``: compile, check FROM and apply, like EMQX's SQL tester."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mqferry._rules.broker_events import event_by_name, event_by_topic
from mqferry._rules.functions import FunctionTable
from mqferry._rules.rule import Output, compile_sql

__all__ = ["evaluate_sql"]


def evaluate_sql(
    sql: str, event: Mapping[str, Any], functions: FunctionTable | None = None
) -> Output | None:
    """Compile ``sql`` and run it on ``event`` when its FROM clause selects the event.

    An event with an ``event`` key naming an event topic (``$bridges/kafka_consumer:x``; the
    ``$sources/`` spelling is the same source) is matched against the FROM event topics; so is an
    EMQX broker event (``"event": "client.connected"``), under both spellings of its topic
    (``$events/client/connected``, ``$events/client_connected``); any other event is an MQTT
    message whose ``topic`` is matched against the FROM topic filters.

    Returns:
        The output (a dict, or a list for FOREACH, empty when no element was produced), or None
        when FROM does not select the event or WHERE is false.

    Raises:
        RuleSyntaxError: the SQL does not parse.
        RuleCompileError: unknown function or wrong number of arguments.
        RuleEvalError: evaluation failed.
    """
    rule = compile_sql(sql, functions)
    name = event.get("event")
    broker = event_by_name(event_by_topic(name) or name) if isinstance(name, str) else ()
    if broker:
        selected = any(rule.matches_event(topic) for topic in broker)
    elif isinstance(name, str) and name.startswith("$"):
        selected = rule.matches_event(name)
    else:
        topic = event.get("topic")
        selected = isinstance(topic, str) and rule.matches_topic(topic)
    if not selected:
        return None
    return rule.apply(event)

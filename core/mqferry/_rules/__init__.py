"""The rule engine: EMQX rule SQL parsed once, compiled to closures, run per event.

Public names:

- :func:`compile_sql` -> :class:`CompiledRule` (``apply``, ``run``, ``matches_topic``)
- :func:`evaluate_sql`: compile + FROM check + apply, like EMQX's SQL tester
- :class:`Event`: the event mapping; pass one ``Event`` per message to every rule so that the
  payload JSON is decoded at most once
- :class:`TopicIndex`, :func:`topic_matches`: MQTT topic filter routing
- :class:`FunctionTable`, :func:`builtin_function_table`: the callable functions
- the errors: :class:`RuleError` and its subclasses
"""

from __future__ import annotations

from mqferry._rules.errors import (
    DuplicateFunctionError,
    RuleCompileError,
    RuleError,
    RuleEvalError,
    RuleSyntaxError,
)
from mqferry._rules.evaluate import evaluate_sql
from mqferry._rules.event import Event
from mqferry._rules.functions import FunctionSpec, FunctionTable, builtin_function_table
from mqferry._rules.rule import CompiledRule, Outcome, RuleResult, compile_sql
from mqferry._rules.topic import TopicIndex, topic_matches

__all__ = [
    "CompiledRule",
    "DuplicateFunctionError",
    "Event",
    "FunctionSpec",
    "FunctionTable",
    "Outcome",
    "RuleCompileError",
    "RuleError",
    "RuleEvalError",
    "RuleResult",
    "RuleSyntaxError",
    "TopicIndex",
    "builtin_function_table",
    "compile_sql",
    "evaluate_sql",
    "topic_matches",
]

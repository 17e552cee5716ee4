"""An example mqferry plugin: the rule function ``c_to_f``, the ``jsonl_file`` action and the
``ticker`` source (see docs/plugins.md)."""

from __future__ import annotations

from mqferry import (
    Action,
    ActionRegister,
    ActionType,
    FunctionRegister,
    RuntimeContext,
    Source,
    SourceRegister,
    SourceType,
    hookimpl,
)
from mqferry_example.action import JsonLinesAction, JsonLinesConfig
from mqferry_example.source import TickerConfig, TickerSource


def c_to_f(celsius: float) -> float:
    """Degrees Celsius in Fahrenheit: ``SELECT c_to_f(payload.t) AS f FROM "sensors/#"``."""
    if isinstance(celsius, bool) or not isinstance(celsius, int | float):
        # any exception fails the rule for this message alone, counted as failed.exception
        raise TypeError(f"c_to_f: expected a number, got {celsius!r}")
    return celsius * 9 / 5 + 32


def _jsonl_file(name: str, config: JsonLinesConfig, connector: None,
                context: RuntimeContext) -> Action:
    return JsonLinesAction(name=name, config=config)


def _ticker(name: str, config: TickerConfig, connector: None, context: RuntimeContext) -> Source:
    return TickerSource(name=name, config=config, context=context)


@hookimpl
def mqferry_register_functions(register: FunctionRegister) -> None:
    """Add ``c_to_f`` to rule SQL (exactly one argument)."""
    register.add("c_to_f", c_to_f, min_args=1, max_args=1)


@hookimpl
def mqferry_register_action_types(register: ActionRegister) -> None:
    """Add the ``jsonl_file`` action type (it needs no connector)."""
    register.add(ActionType("jsonl_file", JsonLinesConfig, _jsonl_file,
                            description="Append rule outputs to a file as JSON lines"))


@hookimpl
def mqferry_register_source_types(register: SourceRegister) -> None:
    """Add the ``ticker`` source type."""
    register.add(SourceType("ticker", TickerConfig, _ticker,
                            description="Feed rules a numbered event every interval",
                            event_columns=(("n", "the tick's number, from 1"),
                                           ("event", "$bridges/ticker:<source name>"))))

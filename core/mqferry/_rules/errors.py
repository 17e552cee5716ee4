"""Errors raised by the rule engine.

Exception tree::

    MqferryError (mqferry._errors)
    └── RuleError              base of every rule SQL error
    ├── RuleSyntaxError        the SQL text does not parse (has .line, .column)
    ├── RuleCompileError       parses, but names an unknown function or uses a bad arity
    └── RuleEvalError          evaluating a compiled rule against an event failed
    DuplicateTypeError (mqferry._errors)
    └── DuplicateFunctionError two plugins registered the same SQL function name

``mqferry`` exports the four rule errors; ``mqferry._errors`` draws the whole tree.
"""

from __future__ import annotations

from mqferry._errors import DuplicateTypeError, MqferryError

__all__ = [
    "DuplicateFunctionError",
    "RuleCompileError",
    "RuleError",
    "RuleEvalError",
    "RuleSyntaxError",
]


class RuleError(MqferryError):
    """Base class of every error about rule SQL."""


class RuleSyntaxError(RuleError):
    """The rule SQL does not parse.

    The message reads ``line 1, col 24: unexpected 'FORM', expected FROM`` followed by the
    offending SQL line and a caret under the column.

    Attributes:
        line: 1-based line of the error.
        column: 1-based column of the error.
        detail: the first line of the message, without the SQL excerpt.
    """

    def __init__(self, detail: str, *, line: int, column: int, sql: str) -> None:
        self.line = line
        self.column = column
        self.detail = detail
        lines = sql.splitlines() or [""]
        excerpt = lines[line - 1] if 0 < line <= len(lines) else ""
        caret = " " * max(column - 1, 0) + "^"
        super().__init__(f"line {line}, col {column}: {detail}\n{excerpt}\n{caret}")


class RuleCompileError(RuleError):
    """The rule SQL parses but cannot be compiled (unknown function, wrong arity)."""


class RuleEvalError(RuleError):
    """Evaluating a rule against an event failed.

    EMQX counts these as ``failed.exception``.

    Attributes:
        reason: a short machine-friendly reason, e.g. ``decode_json_failed``,
            ``bad_sql_function_argument`` or ``badarith``.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        self.reason = reason
        super().__init__(f"{reason}: {message}" if message else reason)


class DuplicateFunctionError(DuplicateTypeError):
    """A rule SQL function name was registered twice.

    Attributes:
        name: the function name.
        first: the plugin that registered it first.
        second: the plugin that tried to register it again.
    """

    def __init__(self, name: str, first: str, second: str) -> None:
        super().__init__("function", name, first, second)

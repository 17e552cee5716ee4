"""The exceptions mqferry raises.

::

    MqferryError
    ├── ConfigError            invalid configuration; carries every problem as (path, message)
    ├── PluginError            a plugin could not be loaded or registered
    │   └── DuplicateTypeError two plugins registered the same type name
    ├── TemplateError          a ${...} template cannot be parsed or rendered
    ├── DeliveryError          an action could not secure a message (with the reason counter)
    └── RuleError              (mqferry.rules.errors) rule SQL syntax, compile and evaluation errors
        ├── RuleSyntaxError
        ├── RuleCompileError
        └── RuleEvalError

Every error says which component, field or value it is about, so that the CLI can print it as one
clear line without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class MqferryError(Exception):
    """Base class of every error mqferry raises on purpose."""


class ConfigError(MqferryError):
    """The configuration is invalid.

    Args:
        problems: ``(path, message)`` pairs, where ``path`` is dotted (``rules.my_rule.sql``).
    """

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems: list[tuple[str, str]] = list(problems)
        super().__init__("\n".join(f"{p}: {m}" if p else m for p, m in self.problems))


class PluginError(MqferryError):
    """A plugin could not be loaded or its registration was refused."""


class DuplicateTypeError(PluginError):
    """Two plugins registered the same type name.

    Args:
        kind: ``connector``, ``action``, ``source`` or ``function``.
        name: the type name both registered.
        first: the plugin that registered it first.
        second: the plugin that tried again.
    """

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        self.kind, self.name, self.first, self.second = kind, name, first, second
        super().__init__(
            f"{kind} type {name!r} is registered by both plugin {first!r} and plugin {second!r}"
        )


class TemplateError(MqferryError):
    """A ``${...}`` template could not be parsed, or a strict render found a missing value."""


class DeliveryError(MqferryError):
    """An action could not secure a message.

    Args:
        reason: the metric counter it is counted under, such as ``failed.too_large``.
        detail: a readable explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")

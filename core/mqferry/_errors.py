"""The exceptions mqferry raises: one tree, whose root is :class:`MqferryError`.

::

    MqferryError
    ├── ConfigError              invalid configuration; carries every problem as (path, message)
    │   (runtime.reconfig) ConfigConflictError  a change lost a race with another change
    ├── PluginError              a plugin misbehaved at registration (names the plugin)
    │   └── DuplicateTypeError   two plugins registered the same type name
    │       └── (rules.errors) DuplicateFunctionError  ... the same SQL function name
    ├── TemplateError            a ${...} template cannot be parsed or rendered
    ├── DeliveryError            an action could not secure a message (with the reason counter)
    ├── MqttUnavailable          no MQTT session: not connected, or lost before the broker's ack
    ├── RuleError                (rules.errors) rule SQL syntax, compile and evaluation errors
    │   ├── RuleSyntaxError
    │   ├── RuleCompileError
    │   └── RuleEvalError
    ├── (rules.functions._args) BadArg   a SQL function's argument; also a TypeError
    ├── (api.errors) ApiError            a management API answer with an HTTP status and code
    ├── (buffer.errors) DiskBufferError  a disk buffer directory or write failed; also an OSError
    │   └── DiskBufferInUseError  another queue (this process's or another's) holds the directory
    └── plugins' own errors, caught inside the plugin that raises them:
        (mqferry_kafka_consumer.message) RecordDecodeError   a record's key/value is not UTF-8
        (mqferry_kafka_producer.partitions) KafkaUnreachable  no broker answered a lookup

``ConfigConflictError`` derives from :class:`MqferryError` directly; it is drawn under
:class:`ConfigError` for its subject only.

Every error says which component, field or value it is about (``component`` holds the id of the
component it concerns, when one does), so that the CLI can print it as one clear line without a
traceback. Errors of the libraries plugins use (aiokafka, the socket and TLS errors of the MQTT
connection) are turned into these, or into a status or a failure reason, where the plugin meets
the core; they are not part of the plugin contract.
"""

from __future__ import annotations

from collections.abc import Iterable


class MqferryError(Exception):
    """Base class of every error mqferry raises on purpose.

    Args:
        *args: the message (as :class:`Exception`).
        component: the id of the component the error is about (``kafka_producer:sink``, or a
            plugin's name), when there is one.
    """

    #: the id of the component the error is about, or ``None``
    component: str | None = None

    def __init__(self, *args: object, component: str | None = None) -> None:
        super().__init__(*args)
        if component is not None:
            self.component = component


class ConfigError(MqferryError):
    """The configuration is invalid.

    Args:
        problems: ``(path, message)`` pairs, where ``path`` is dotted (``rules.my_rule.sql``).
    """

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        self.problems: list[tuple[str, str]] = list(problems)
        super().__init__("\n".join(f"{p}: {m}" if p else m for p, m in self.problems))


class PluginError(MqferryError):
    """A plugin's registration was refused, or its registration hook failed.

    Its ``component`` is the plugin's name. (A plugin that fails to import is logged and skipped,
    not raised: the other plugins still load.)
    """


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
            f"{kind} type {name!r} is registered by both plugin {first!r} and plugin {second!r}",
            component=second,
        )


class TemplateError(MqferryError):
    """A ``${...}`` template could not be parsed, or a strict render found a missing value."""


class DeliveryError(MqferryError):
    """An action could not secure a message.

    Args:
        reason: the metric counter it is counted under, such as ``failed.too_large``.
        detail: a readable explanation.
        component: the action's id, when the raiser knows it.
    """

    def __init__(self, reason: str, detail: str, *, component: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}", component=component)


class MqttUnavailable(MqferryError):
    """No MQTT session to publish, subscribe or connect on.

    Raised (or set on a publish's future) when the session is not up, when it is lost before
    the broker acknowledged, when a request times out and when a connection attempt fails. It
    says nothing about the message itself: publish it again once the session is back
    (``wait_connected``).

    Args:
        reason: why there is no session (a socket or TLS error, ``Operation timed out``,
            ``Connection refused: <the CONNACK's reason>`` ...).
        component: the MQTT connector (``mqtt``, as ``/status`` names it).
        session: the broker and client id, ``host:port as client-id``, when known.
    """

    def __init__(self, reason: str, *, component: str | None = "mqtt",
                 session: str | None = None) -> None:
        self.reason = reason
        self.session = session
        super().__init__(reason, component=component)

"""``mqferry rule test``: run rule SQL against a sample event, like EMQX's SQL tester.

The functions are the installed plugins' as well as the built-ins: the command loads the plugin
manager's function table as ``mqferry run`` does, so a plugin function that a running instance
accepts is known here too.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import click
import orjson

from mqferry._errors import MqferryError
from mqferry._rules.broker_events import resolve, sample_columns
from mqferry._rules.errors import RuleError
from mqferry._rules.evaluate import evaluate_sql
from mqferry._rules.values import json_dumps

if TYPE_CHECKING:
    from mqferry._rules.functions import FunctionTable

__all__ = ["UnknownEventType", "context_event", "rule", "sample_event"]

NODE = "mqferry@127.0.0.1"


class UnknownEventType(ValueError):
    """A tester context names an event type that is neither a message nor an EMQX event."""


def sample_event(
    topic: str, payload: str, clientid: str, context: dict[str, Any]
) -> dict[str, Any]:
    """A ``message.publish`` event with EMQX's tester defaults, overridden by ``context``."""
    now = int(time.time() * 1000)
    event: dict[str, Any] = {
        "id": uuid.uuid4().hex.upper(),
        "clientid": clientid,
        "username": "u_emqx",
        "payload": payload,
        "peerhost": "127.0.0.1",
        "topic": topic,
        "qos": 1,
        "flags": {"retain": False, "dup": False},
        "pub_props": {"User-Property": {}},
        "timestamp": now,
        "publish_received_at": now,
        "node": NODE,
        "event": "message.publish",
    }
    event.update(context)
    return event


def context_event(context: dict[str, Any], *, topic: str = "t/1", payload: str = "{}",
                 clientid: str = "c_emqx") -> dict[str, Any]:
    """The event a tester ``context`` describes, as EMQX's SQL tester builds it.

    ``context["event_type"]`` (``client_connected``) or ``context["event"]`` (``client.connected``
    or an event topic) chooses an EMQX broker event: its example columns, overridden by the
    context. ``message_publish``, or neither key, is an MQTT message on ``topic``; an ``event``
    such as ``$bridges/kafka_consumer:name`` is a source's record (the context gives its columns).

    Raises:
        UnknownEventType: an ``event_type`` that is none of these.
    """
    ctx = dict(context)
    event_type = ctx.pop("event_type", None)
    if event_type is not None and not isinstance(event_type, str):
        raise UnknownEventType("event_type: expected a string")
    named = ctx.get("event")
    broker = resolve(event_type) if event_type else None
    if broker is None and event_type in (None, "message_publish") and isinstance(named, str):
        broker = resolve(named)
    if broker is not None:
        return {**sample_columns(broker, NODE), **ctx, "event": broker}
    if event_type not in (None, "message_publish") and not str(named or "").startswith("$"):
        raise UnknownEventType(
            f"event_type: {event_type!r} is not supported; use message_publish, an EMQX event "
            "type such as client_connected, or an \"event\" such as "
            "\"$bridges/kafka_consumer:<name>\"")
    return sample_event(topic, payload, clientid, ctx)


def _function_table(ctx: click.Context) -> FunctionTable:
    # The plugin set the CLI was built with (``mqferry`` passes it in obj), else a fresh one.
    obj = ctx.find_object(dict)
    plugins = obj.get("plugins") if obj is not None else None
    if plugins is None:
        from mqferry._plugins import load_plugins

        plugins = load_plugins()
    try:
        table: FunctionTable = plugins.function_table()
    except MqferryError as exc:  # two plugins registered one function name
        raise click.ClickException(str(exc)) from None
    return table


@click.group()
def rule() -> None:
    """Work with rule SQL."""


@rule.command("test")
@click.option("--sql", required=True, help="The rule SQL.")
@click.option("--topic", default="t/1", show_default=True, help="MQTT topic of the message.")
@click.option("--payload", default="{}", show_default=True, help="Message payload (text).")
@click.option("--clientid", default="c_emqx", show_default=True, help="Publisher client id.")
@click.option("--event", "event_name", default=None,
              help="An EMQX event instead of a message: client_connected, client.connected or "
                   "$events/client/connected (and the others EMQX has); its example columns, "
                   "changed by --context. mqferry never raises these events itself.")
@click.option("--context", "context_json", default=None,
              help='JSON object of extra or replacement columns, e.g. \'{"qos": 0}\'; with an '
                   '"event" such as "$bridges/kafka_consumer:name" it is a Kafka source event.')
@click.pass_context
def test_command(ctx: click.Context, sql: str, topic: str, payload: str, clientid: str,  # noqa: PLR0917 - click passes each option
                 event_name: str | None, context_json: str | None) -> None:
    """Run SQL on one message: prints the output as JSON (exit 0), `no match` (exit 1) or the
    error (exit 2)."""
    context: dict[str, Any] = {}
    if context_json:
        try:
            loaded = orjson.loads(context_json)
        except orjson.JSONDecodeError as exc:
            raise click.UsageError(f"--context is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise click.UsageError("--context must be a JSON object")
        context = loaded
    if event_name is not None:
        if resolve(event_name) is None:
            raise click.BadParameter(f"{event_name!r} is not an EMQX event", param_hint="--event")
        context["event_type"] = resolve(event_name)
    try:
        event = context_event(context, topic=topic, payload=payload, clientid=clientid)
    except UnknownEventType as exc:
        raise click.UsageError(f"--context: {exc}") from None
    functions = _function_table(ctx)
    try:
        output = evaluate_sql(sql, event, functions)
    except RuleError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    if output is None:
        click.echo("no match")
        raise SystemExit(1)
    click.echo(json_dumps(output))

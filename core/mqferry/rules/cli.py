"""``mqferry rule test``: run rule SQL against a sample message, like EMQX's SQL tester."""

from __future__ import annotations

import time
import uuid
from typing import Any

import click
import orjson

from mqferry.rules.errors import RuleError
from mqferry.rules.evaluate import evaluate_sql
from mqferry.rules.values import json_dumps

__all__ = ["rule"]


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
        "node": "mqferry@127.0.0.1",
        "event": "message.publish",
    }
    event.update(context)
    return event


@click.group()
def rule() -> None:
    """Work with rule SQL."""


@rule.command("test")
@click.option("--sql", required=True, help="The rule SQL.")
@click.option("--topic", default="t/1", show_default=True, help="MQTT topic of the message.")
@click.option("--payload", default="{}", show_default=True, help="Message payload (text).")
@click.option("--clientid", default="c_emqx", show_default=True, help="Publisher client id.")
@click.option("--context", "context_json", default=None,
              help='JSON object of extra or replacement columns, e.g. \'{"qos": 0}\'; with an '
                   '"event" such as "$bridges/kafka_consumer:name" it is a Kafka source event.')
def test_command(sql: str, topic: str, payload: str, clientid: str,
                 context_json: str | None) -> None:
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
    event = sample_event(topic, payload, clientid, context)
    try:
        output = evaluate_sql(sql, event)
    except RuleError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    if output is None:
        click.echo("no match")
        raise SystemExit(1)
    click.echo(json_dumps(output))

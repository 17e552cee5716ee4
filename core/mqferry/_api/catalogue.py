"""``/rule_functions`` and ``/rule_events``: what rule SQL can call and select, for completion.

The functions are the instance's function table (the built-in catalogue and every plugin's);
the events are MQTT's ``message.publish`` and one per registered source type, with the columns
each carries.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import APIRouter

from mqferry._rules.functions.table import FunctionSpec
from mqferry._runtime.reconfig import Controller

__all__ = ["MESSAGE_COLUMNS", "catalogue_router", "function_view"]

#: The columns of an MQTT message's event (:func:`mqferry._runtime.events.message_event`).
MESSAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("payload", "the message payload; payload.<field> reads a JSON payload's field"),
    ("topic", "the message's topic"),
    ("qos", "the message's QoS"),
    ("clientid", "the publisher's client id, from the MQTT 5 user property clientid"),
    ("username", "the publisher's user name, from the MQTT 5 user property username"),
    ("flags", "{retain, dup}"),
    ("pub_props", "MQTT 5 publish properties; pub_props.'User-Property' is a map"),
    ("id", "a unique message id"),
    ("timestamp", "when mqferry received the message, epoch milliseconds"),
    ("publish_received_at", "when mqferry received the message, epoch milliseconds"),
    ("node", "the mqferry node"),
    ("event", "message.publish"),
)


def _columns(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"name": n, "description": d} for n, d in pairs]


def function_view(spec: FunctionSpec) -> dict[str, Any]:
    """One function: its name, argument names, arity, plugin and the first line of its docs."""
    params = list(inspect.signature(spec.func).parameters.values())[int(spec.needs_event):]
    names = [f"{p.name}..." if p.kind is p.VAR_POSITIONAL else p.name for p in params
             if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    doc = (inspect.getdoc(spec.func) or "").split("\n\n")[0].replace("\n", " ").replace("``", "")
    return {"name": spec.name, "args": names, "min_args": spec.min_args,
            "max_args": spec.max_args, "plugin": spec.plugin, "description": doc}


def catalogue_router(ctrl: Controller) -> APIRouter:
    """The routes of the function and event catalogues."""
    router = APIRouter(tags=["rules"])
    table = ctrl.plugins.function_table()
    functions = [function_view(spec) for name in table if (spec := table.get(name)) is not None]

    @router.get("/rule_functions", summary="The functions rule SQL can call")
    async def rule_functions() -> list[dict[str, Any]]:
        return functions

    @router.get("/rule_events", summary="The events rules select, with their columns")
    async def rule_events() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{
            "event": "message.publish", "title": "MQTT message",
            "columns": _columns(MESSAGE_COLUMNS),
            "sql_example": 'SELECT payload.temp AS temp, topic FROM "sensors/#"'}]
        for typ in ctrl.plugins.registries().sources:
            out.append({"event": f"$bridges/{typ.name}:*", "title": f"{typ.name} source",
                        "source_type": typ.name, "columns": _columns(typ.event_columns),
                        # An example for people to read, never run: no injection.
                        "sql_example": f'SELECT * FROM "$bridges/{typ.name}:<name>"'})  # noqa: S608
        return out

    return router

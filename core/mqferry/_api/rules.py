"""``/rules``, ``/rule_test`` and ``/rules/:id/test``, with EMQX v5's paths and shapes.

A rule is created, changed or deleted on its own (:meth:`Controller.change_rule`): the cost of a
call does not grow with the number of rules. Tests run in worker threads with a time limit
(:class:`~mqferry._api.tester.RuleTestRunner`); whatever the tested rule or template raises is
answered as a 400 (or, per action, in the rendering), never a 500.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from fastapi import APIRouter, Query, Response

from mqferry._api.errors import ApiError, bad_request, not_found
from mqferry._api.nodes import cluster_metrics
from mqferry._api.preview import preview
from mqferry._api.redact import redact
from mqferry._api.schemas import RuleBody, RuleTestBody, RuleUpdate, StoredRuleTest
from mqferry._api.tester import RuleTestRunner
from mqferry._config.models import InlineAction
from mqferry._errors import MqferryError
from mqferry._rules.cli import UnknownEventType, context_event
from mqferry._rules.evaluate import evaluate_sql
from mqferry._rules.values import json_dumps
from mqferry._runtime.reconfig import Controller

__all__ = ["rules_router"]

_RULE_METRICS_RATES = {"rate": "matched.rate", "rate_max": "matched.rate.max",
                       "rate_last5m": "matched.rate.last5m"}


def _stored_actions(actions: list[str | InlineAction]) -> list[Any]:
    return [a if isinstance(a, str) else a.model_dump(mode="json") for a in actions]


def rule_view(ctrl: Controller, rid: str) -> dict[str, Any]:
    """One rule as the API shows it."""
    spec = ctrl.app.config.rules.get(rid)
    if spec is None:
        raise not_found(f"rule {rid}")
    cfg = spec.config
    created, modified = ctrl.times.get(f"rules/{rid}", (ctrl.loaded_at, ctrl.loaded_at))
    running = ctrl.app.rules.get(rid)
    failure = running.last_error if running is not None else None
    return {"id": rid, "name": cfg.name, "sql": cfg.sql,
            "actions": redact(_stored_actions(cfg.actions)), "enable": cfg.enable,
            "description": cfg.description,
            "from": [*spec.compiled.topic_filters, *spec.compiled.event_topics],
            "created_at": created, "last_modified_at": modified,
            "last_error": failure.as_dict() if failure is not None else None}


def rule_metrics_view(ctrl: Controller, rid: str) -> dict[str, Any]:
    """EMQX's ``{"id", "metrics", "node_metrics"}`` with the rule's rate names: the cluster's
    total and each node's (this node's alone without a cluster)."""
    rule = ctrl.app.rules.get(rid)
    snap: dict[str, float] = {}
    if rule is not None:
        snap = {_RULE_METRICS_RATES.get(k, k): v for k, v in rule.metrics.snapshot().items()}
    else:
        from mqferry._metrics import RULE_COUNTERS

        snap = dict.fromkeys((*RULE_COUNTERS, *_RULE_METRICS_RATES.values()), 0)
    return {"id": rid, **cluster_metrics(ctrl.app, f"rule:{rid}", snap,
                                         lambda k: _RULE_METRICS_RATES.get(k, k))}


def test_event(context: dict[str, Any]) -> dict[str, Any]:
    """The event of a tester ``context``: EMQX's ``message_publish`` columns, an EMQX broker
    event's (``"event_type": "client_connected"``), or a source's record.

    Raises:
        ApiError: an unknown event type, or a context field of the wrong type.
    """
    ctx = dict(context)
    if "payload" in ctx and not isinstance(ctx["payload"], str):
        try:
            ctx["payload"] = orjson.dumps(ctx["payload"]).decode()
        except orjson.JSONEncodeError as exc:  # an integer beyond 64 bits ...
            raise bad_request(f"context.payload: {exc}") from None
    if any(not isinstance(ctx.get(k, ""), str) for k in ("topic", "clientid")):
        raise bad_request("context.topic and context.clientid must be strings")
    try:
        return context_event(ctx)
    except UnknownEventType as exc:
        raise bad_request(f"context.{exc}") from None


def _describe(exc: Exception) -> str:
    # Our own errors read as sentences; anything else a rule or plugin raised is named.
    return str(exc) if isinstance(exc, MqferryError) else f"{type(exc).__name__}: {exc}"


def _json_text(value: Any) -> str:
    try:
        return json_dumps(value)
    except Exception as exc:  # a value with no JSON form: the test's answer, not a server error
        raise bad_request(f"the output cannot be shown as JSON: {_describe(exc)}") from None


def _evaluate(sql: str, context: dict[str, Any], functions: Any) -> Any:
    event = test_event(context)
    try:
        return evaluate_sql(sql, event, functions)
    except ApiError:
        raise
    except Exception as exc:  # whatever the tested SQL or its functions raised
        raise bad_request(_describe(exc)) from None


def _answer(text: str | None) -> Response:
    if text is None:
        raise ApiError(412, "NOT_MATCH", "SQL not match")
    return Response(text, media_type="application/json")


def rules_router(ctrl: Controller) -> APIRouter:  # noqa: PLR0915 - a closure per route
    """The rule routes."""
    router = APIRouter(tags=["rules"])
    tester = RuleTestRunner()

    def require(rid: str) -> None:
        if rid not in (ctrl.data.get("rules") or {}):
            raise not_found(f"rule {rid}")

    @router.get("/rules", summary="List rules, filtered and paged")
    async def list_rules(  # noqa: PLR0917 - the query parameters are EMQX's
        enable: bool | None = None,
        from_: str | None = Query(None, alias="from"),
        like_id: str | None = None,
        like_from: str | None = None,
        like_description: str | None = None,
        page: int = Query(1, ge=1, le=1_000_000),
        limit: int = Query(100, ge=1, le=10_000),
    ) -> dict[str, Any]:
        views = [rule_view(ctrl, rid) for rid in sorted(ctrl.app.config.rules)]
        if enable is not None:
            views = [v for v in views if v["enable"] == enable]
        if from_ is not None:
            views = [v for v in views if from_ in v["from"]]
        if like_id:
            views = [v for v in views if like_id in v["id"]]
        if like_from:
            views = [v for v in views if any(like_from in f for f in v["from"])]
        if like_description:
            views = [v for v in views if like_description in v["description"]]
        start = (page - 1) * limit
        return {"data": views[start:start + limit],
                "meta": {"page": page, "limit": limit, "count": len(views),
                         "hasnext": start + limit < len(views)}}

    @router.post("/rules", status_code=201, summary="Create a rule (the SQL is checked)")
    async def create(body: RuleBody) -> dict[str, Any]:
        rid = body.id or secrets.token_hex(4)
        stored = body.model_dump(mode="json", exclude={"id"}, exclude_defaults=True)
        stored["sql"] = body.sql

        def add(current: dict[str, Any] | None) -> dict[str, Any]:
            if current is not None:
                raise bad_request(f"rule {rid} already exists", code="ALREADY_EXISTS")
            return stored

        await ctrl.change_rule(rid, add)
        return rule_view(ctrl, rid)

    @router.get("/rules/{id}", summary="Get a rule")
    async def get_one(id: str) -> dict[str, Any]:
        require(id)
        return rule_view(ctrl, id)

    @router.put("/rules/{id}", summary="Update a rule; fields not given are kept")
    async def update(id: str, body: RuleUpdate) -> dict[str, Any]:
        require(id)
        given = body.model_dump(mode="json", exclude_unset=True)
        if any(v is None for v in given.values()):
            raise bad_request(", ".join(k for k, v in given.items() if v is None)
                              + ": null is not allowed")

        def put(current: dict[str, Any] | None) -> dict[str, Any]:
            if current is None:
                raise not_found(f"rule {id}")
            return {**current, **given}

        await ctrl.change_rule(id, put)
        return rule_view(ctrl, id)

    @router.delete("/rules/{id}", status_code=204, summary="Delete a rule")
    async def delete(id: str) -> Response:
        require(id)

        def remove(current: dict[str, Any] | None) -> None:
            if current is None:
                raise not_found(f"rule {id}")

        await ctrl.change_rule(id, remove)
        return Response(status_code=204)

    @router.get("/rules/{id}/metrics", summary="A rule's counters and rates")
    async def metrics(id: str) -> dict[str, Any]:
        require(id)
        return rule_metrics_view(ctrl, id)

    @router.put("/rules/{id}/metrics/reset", status_code=204, summary="Zero a rule's counters")
    async def reset(id: str) -> Response:
        require(id)
        rule = ctrl.app.rules.get(id)
        if rule is not None:
            rule.metrics.reset()
        return Response(status_code=204)

    @router.post("/rule_test", summary="Run SQL on a sample event (the SQL tester)",
                 responses={412: {"description": "NOT_MATCH: FROM or WHERE did not match"}})
    async def rule_test(body: RuleTestBody) -> Response:
        functions = ctrl.function_table()

        def run() -> str | None:
            output = _evaluate(body.sql, body.context, functions)
            return None if output is None else _json_text(output)

        return _answer(await tester.run(run))

    @router.post("/rules/{id}/test",
                 summary="Run a stored rule and render what each action would send",
                 responses={412: {"description": "NOT_MATCH: FROM or WHERE did not match"}})
    async def stored_test(id: str, body: StoredRuleTest) -> Response:
        require(id)
        spec = ctrl.app.config.rules[id]
        functions = ctrl.function_table()
        actions = [(aid, ctrl.app.actions.get(aid)) for aid in spec.action_ids]

        def run() -> str | None:
            output = _evaluate(spec.config.sql, body.context, functions)
            if output is None:
                return None
            outputs = output if isinstance(output, list) else [output]
            shown: list[dict[str, Any]] = []
            for aid, action in actions:
                if action is None:
                    shown.append({"action": aid, "error": "not running (disabled)"})
                else:
                    shown.append({"action": aid,
                                  "rendered": [preview(action, o) for o in outputs]})
            return _json_text({"output": output, "actions": shown})

        return _answer(await tester.run(run))

    return router

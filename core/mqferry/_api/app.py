"""The FastAPI application: EMQX v5 paths under ``/api/v5``, API-key access, error shape."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from mqferry._api.audit import AUDIT_FILE, AuditLog, AuditMiddleware
from mqferry._api.catalogue import catalogue_router
from mqferry._api.components import component_router, component_status
from mqferry._api.console import mount_console
from mqferry._api.docs import docs_routes
from mqferry._api.errors import ApiError, install_handlers
from mqferry._api.history import history_router
from mqferry._api.keys import KeyStore, parse_basic
from mqferry._api.limits import BodyLimits
from mqferry._api.mqtt_section import mqtt_router
from mqferry._api.nodes import nodes_router
from mqferry._api.roles import ADMIN_ONLY, allowed
from mqferry._api.rules import rules_router
from mqferry._metrics.prometheus import CONTENT_TYPE, exposition
from mqferry._runtime.reconfig import Controller
from mqferry._types import Status
from mqferry._version import __version__

__all__ = ["BASE", "create_api", "status_view"]

BASE = "/api/v5"


async def status_view(ctrl: Controller) -> dict[str, Any]:
    """Liveness, readiness and the status of the MQTT session and every component.

    Ready means: running, the MQTT session is up and every running connector is connected; on a
    cluster node also the cluster's transport, its session slot membership and parts.
    """
    app = ctrl.app
    mqtt = await app.mqtt_health()
    out: dict[str, Any] = {"node": app.node, "version": __version__,
                           "status": "running" if app.running else "stopped",
                           "mqtt": mqtt.to_json()}
    ready = app.running and mqtt.status is Status.CONNECTED
    for kind in ("connectors", "actions", "sources"):
        items = []
        for cid in sorted(getattr(app.config, kind)):
            health = await component_status(ctrl, kind, cid)
            items.append({"id": cid, **health.to_json()})
            if kind == "connectors" and cid in app.connectors:
                ready = ready and health.status is Status.CONNECTED
        out[kind] = items
    out["rules"] = {"total": len(app.config.rules), "enabled": len(app.rules)}
    # The app's own loops that died recently (each is restarted), and a failing write-back.
    tasks = app.task_problems()
    if ctrl.write_error is not None:
        tasks.append({"task": "mqferry[config].write", "owner": "config",
                      "reason": ctrl.write_error})
    out["tasks"] = tasks
    if app.cluster is not None:
        out["cluster"] = await app.cluster.status()
        ready = ready and out["cluster"]["status"] == "connected"
    out["ready"] = ready
    return out


def _auth(keys: KeyStore) -> Any:
    async def check(request: Request) -> None:
        header = request.headers.get("authorization")
        pair = parse_basic(header)
        if pair is None:
            why = ("no API key was sent" if not header else
                   "the Authorization header is not HTTP Basic with key:secret")
            raise ApiError(401, "UNAUTHORIZED",
                           f"{why}: send an API key and secret with HTTP Basic "
                           "(curl -u KEY:SECRET); create one with `mqferry api-key create`")
        key, why = keys.check(*pair)
        if key is None:
            raise ApiError(401, "UNAUTHORIZED", why)
        request.state.api_key = key  # for the audit log
        if not allowed(key.role, request.method, request.scope.get("route")):
            raise ApiError(403, "FORBIDDEN",
                           f"API key {key.name!r} has the role {key.role!r}, which may not "
                           f"{request.method} {request.url.path}")

    return check


def create_api(ctrl: Controller, keys: KeyStore, audit: AuditLog | None = None) -> FastAPI:
    """The API of one running instance.

    Args:
        ctrl: the instance's configuration controller (and through it, the app).
        keys: the API key store.
        audit: the audit log; by default ``audit.jsonl`` beside the key store.
    """
    audit_file = audit or AuditLog(keys.path.with_name(AUDIT_FILE))
    api = FastAPI(title="mqferry", version=__version__,
                  description="Manage connectors, actions, sources and rules of a running "
                              "mqferry, with EMQX v5's paths and shapes.",
                  # Served by the /api/v5 router (mqferry._api.docs), behind its key.
                  openapi_url=None, docs_url=None, redoc_url=None)
    install_handlers(api)
    settings = ctrl.app.config.raw.api
    # Added before CORS, so it runs inside it: a refusal still carries the CORS headers.
    api.add_middleware(BodyLimits, max_size=settings.max_body_size,
                       max_depth=settings.max_json_depth)
    origins = settings.cors_origins
    if origins:
        # Credentials travel in the Authorization header, never in cookies.
        api.add_middleware(CORSMiddleware, allow_origins=origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    # Outermost: a change refused by any layer is logged too.
    api.add_middleware(AuditMiddleware, log_file=audit_file, prefix=f"{BASE}/")
    v5 = APIRouter(prefix=BASE, dependencies=[Depends(_auth(keys))])
    for kind in ("connectors", "actions", "sources"):
        v5.include_router(component_router(ctrl, kind))
    v5.include_router(rules_router(ctrl))
    docs_routes(v5, api)
    for extra in (history_router, catalogue_router, mqtt_router, nodes_router):
        v5.include_router(extra(ctrl))

    @v5.get("/status", tags=["status"], summary="Liveness, readiness and component status")
    async def status() -> dict[str, Any]:
        return await status_view(ctrl)

    @v5.get("/metrics", tags=["status"], summary="Every counter in Prometheus text format",
            response_class=Response)
    async def metrics() -> Response:
        app = ctrl.app
        comps: list[tuple[str, str, Any]] = [
            ("rule", rid, r.metrics) for rid, r in app.rules.items()]
        comps += [("action", aid, a.metrics) for aid, a in app.actions.items()]
        comps += [("source", sid, s.metrics) for sid, s in app.sources.items()]
        comps.append(("mqtt", "mqtt", app.mqtt_metrics))
        statuses = [("mqtt", "mqtt", str((await app.mqtt.health()).status))]
        for kind in ("connectors", "actions", "sources"):
            for cid in getattr(app.config, kind):
                health = await component_status(ctrl, kind, cid)
                statuses.append((kind.removesuffix("s"), cid, str(health.status)))
        # Per node, as EMQX's: each node is scraped on its own, told apart by its label.
        return Response(exposition(comps, statuses, node=app.node), media_type=CONTENT_TYPE)

    @v5.get("/whoami", tags=["status"], summary="The API key of this request and its role")
    async def whoami(request: Request) -> dict[str, Any]:
        key = request.state.api_key
        return {"api_key": key.api_key, "name": key.name, "role": key.role}

    @v5.get("/audit", tags=["status"], openapi_extra=ADMIN_ONLY,
            summary="The latest changes made through the API, newest first (administrators)")
    async def audit_log(limit: int = Query(100, ge=1, le=10000)) -> dict[str, Any]:
        entries = await asyncio.to_thread(audit_file.tail, limit)
        return {"data": entries, "meta": {"count": len(entries), "limit": limit}}

    @v5.post("/config/reload", tags=["status"],
             summary="Read the config file again and apply what changed")
    async def reload() -> dict[str, Any]:
        plan = await ctrl.reload()
        return plan.to_json()

    api.include_router(v5)

    @api.get("/status", tags=["status"], include_in_schema=False)
    async def public_status() -> JSONResponse:
        # Unauthenticated, for load balancers and orchestrators: no settings, only states.
        view = await status_view(ctrl)
        return JSONResponse({"status": view["status"], "ready": view["ready"]},
                            status_code=200 if view["ready"] else 503)

    mount_console(api)
    return api

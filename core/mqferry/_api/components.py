"""``/connectors``, ``/actions`` and ``/sources``: list, create, read, update, delete, enable,
probe, metrics and summary, with EMQX v5's paths and shapes. Ids are ``<type>:<name>``."""

# No ``from __future__ import annotations`` here: the body types are built at run time from the
# registered plugins, and FastAPI reads the endpoints' annotations as objects.

import asyncio
import contextlib
import copy
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from mqferry._api.errors import ApiError, bad_request, not_found
from mqferry._api.nodes import cluster_metrics
from mqferry._api.redact import (
    redact,
    refuse_files,
    refuse_rebinding,
    refuse_references,
    restore,
)
from mqferry._api.schemas import post_model
from mqferry._config.loader import ComponentSpec
from mqferry._errors import ConfigError
from mqferry._metrics import ACTION_COUNTERS, SOURCE_COUNTERS
from mqferry._runtime.builder import ConnectorNotRunning
from mqferry._runtime.reconfig import Controller
from mqferry._types import Action, Connector, HealthStatus, Source, Status

__all__ = ["component_router"]

log = logging.getLogger(__name__)

_SINGULAR = {"connectors": "connector", "actions": "action", "sources": "source"}
_PROBE_TIMEOUT = 10.0
_PROBE_GRACE = 1.0


def _split(cid: str) -> tuple[str, str]:
    type_name, sep, name = cid.partition(":")
    if not sep or not type_name or not name:
        raise bad_request(f"invalid id {cid!r}: expected <type>:<name>")
    return type_name, name


def _entries(data: dict[str, Any], kind: str) -> dict[str, Any]:
    section = data.get(kind)
    return section if isinstance(section, dict) else {}


def _stored(data: dict[str, Any], kind: str, cid: str) -> dict[str, Any] | None:
    type_name, name = _split(cid)
    entries = _entries(data, kind).get(type_name)
    if not isinstance(entries, dict) or name not in entries:
        return None
    body = entries[name]
    return body if isinstance(body, dict) else {}


def component_ids(ctrl: Controller, kind: str) -> list[str]:
    """The ids of the configured (not inline) components of ``kind``."""
    out = []
    for type_name, entries in _entries(ctrl.data, kind).items():
        if isinstance(entries, dict):
            out += [f"{type_name}:{name}" for name in entries]
    return sorted(out)


async def component_status(ctrl: Controller, kind: str, cid: str) -> HealthStatus:
    """The health of a running component, or why it is not running."""
    running: dict[str, Any] = getattr(ctrl.app, kind)
    if cid in running:
        try:
            status: HealthStatus = await running[cid].health()
        except Exception as exc:  # a plugin's failing health() must not fail the API
            return HealthStatus(Status.DISCONNECTED, f"health check failed: {exc!r}")
        return status
    spec: ComponentSpec | None = getattr(ctrl.app.config, kind).get(cid)
    if spec is not None and not spec.enabled:
        return HealthStatus(Status.STOPPED, "disabled")
    return HealthStatus(Status.STOPPED, "its connector is disabled")


def rules_using(ctrl: Controller, kind: str, cid: str) -> list[str]:
    """The rules that send to action ``cid`` or select source ``cid``."""
    out = []
    for rid, spec in ctrl.app.config.rules.items():
        if (kind == "actions" and cid in spec.action_ids) or (kind == "sources" and any(
                t.split("/", 1)[-1] == cid for t in spec.compiled.event_topics)):
            out.append(rid)
    return sorted(out)


def dependents(ctrl: Controller, cid: str) -> list[str]:
    """The actions and sources bound to connector ``cid``."""
    cfg = ctrl.app.config
    return sorted(i for specs in (cfg.actions, cfg.sources)
                  for i, s in specs.items() if s.connector_id == cid)


async def view(ctrl: Controller, kind: str, cid: str) -> dict[str, Any]:
    """One component as the API shows it: settings (secrets redacted) and status."""
    _split(cid)
    spec: ComponentSpec | None = getattr(ctrl.app.config, kind).get(cid)
    if spec is None or _stored(ctrl.data, kind, cid) is None:
        raise not_found(f"{_SINGULAR[kind]} {cid}")
    out: dict[str, Any] = {"type": spec.type.name, "name": spec.name}
    out.update(redact(spec.config.model_dump(mode="json")))
    health = await component_status(ctrl, kind, cid)
    out["status"] = str(health.status)
    out["status_reason"] = health.reason
    out["node_status"] = [{"node": ctrl.app.node, "status": str(health.status),
                           "status_reason": health.reason}]
    if kind == "connectors":
        out["actions"] = [d.split(":", 1)[1] for d in dependents(ctrl, cid)]
    else:
        # the latest failure of a running component that keeps one ({reason, message, at})
        out["last_error"] = getattr(getattr(ctrl.app, kind).get(cid), "last_error", None)
    created, modified = ctrl.times.get(f"{kind}/{cid}", (ctrl.loaded_at, ctrl.loaded_at))
    out["created_at"], out["last_modified_at"] = created, modified
    return out


def metrics_view(ctrl: Controller, kind: str, cid: str) -> dict[str, Any]:
    """EMQX's ``{"metrics": {...}, "node_metrics": [{"node", "metrics"}]}``: the cluster's total
    and each node's (this node's alone without a cluster)."""
    component = getattr(ctrl.app, kind).get(cid)
    if component is not None:
        snap = component.metrics.snapshot()
    else:
        names = ACTION_COUNTERS if kind == "actions" else SOURCE_COUNTERS
        snap = dict.fromkeys((*names, "rate", "rate_max", "rate_last5m"), 0)
    return cluster_metrics(ctrl.app, cid, snap)


async def _probe(ctrl: Controller, kind: str, spec: ComponentSpec) -> HealthStatus:
    try:
        return await _try(ctrl, kind, spec)
    except ConfigError as exc:  # its messages are written for clients (a TLS file's, say)
        return HealthStatus(Status.DISCONNECTED, str(exc))
    except Exception:
        # A plugin's unexpected error is a failed probe, not a 500; its text may say more about
        # the host than a client should learn, so it goes to the log.
        log.exception("probe of %s failed", spec.id)
        return HealthStatus(Status.DISCONNECTED, "the probe failed (the reason is in the "
                                                 "mqferry log)")


async def _try(ctrl: Controller, kind: str, spec: ComponentSpec) -> HealthStatus:
    probe = getattr(spec.type, "probe", None)
    if kind == "connectors" and probe is not None:
        status: HealthStatus = await probe(spec.config)
        return status
    build = ctrl.app.builder
    component: Connector | Action | Source
    try:
        if kind == "connectors":
            component = build.connector(spec)
        elif kind == "actions":
            component = build.action(spec, ctrl.app.connectors)
        else:
            component = build.source(spec, ctrl.app.connectors)
    except ConnectorNotRunning as exc:
        return HealthStatus(Status.DISCONNECTED, f"connector {exc.connector_id} is not running")
    await component.start()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        health: HealthStatus = await component.health()
        while health.status is not Status.CONNECTED:
            waited = loop.time() - started
            # "connecting" may still succeed; "disconnected" after a grace period is an answer.
            if waited > _PROBE_TIMEOUT or (
                    health.status is Status.DISCONNECTED and waited > _PROBE_GRACE):
                break
            await asyncio.sleep(0.2)
            health = await component.health()
        return health
    finally:
        with contextlib.suppress(Exception):
            await component.stop()


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise bad_request("the body is not JSON") from None
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    return body


def _check_secrets(ctrl: Controller, registry: Any, path: str, body: dict[str, Any],
                   stored: dict[str, Any] | None) -> None:
    # Before ``restore``: what the client sent, not what is stored, is checked for references.
    typ = registry.get(path.split(".")[1])
    if typ is not None:
        refuse_references(typ.config_model, body, path)
    refuse_rebinding(body, stored)
    refuse_files(body, stored, ctrl.app.config.raw.api.ssl_file_dirs, path)


def component_router(ctrl: Controller, kind: str) -> APIRouter:  # noqa: PLR0915 - a closure per route
    """The routes of one kind: ``connectors``, ``actions`` or ``sources``."""
    one = _SINGULAR[kind]
    registry = getattr(ctrl.plugins.registries(), kind)
    post_body = post_model(kind, registry)
    router = APIRouter(tags=[kind])

    def require(cid: str) -> dict[str, Any]:
        stored = _stored(ctrl.data, kind, cid)
        if stored is None:
            raise not_found(f"{one} {cid}")
        return stored

    def entries_of(data: dict[str, Any], cid: str) -> dict[str, Any]:
        # Inside a change: another request may have removed it since ``require``.
        if _stored(data, kind, cid) is None:
            raise not_found(f"{one} {cid}")
        entries: dict[str, Any] = data[kind][_split(cid)[0]]
        return entries

    @router.get(f"/{kind}", summary=f"List {kind}")
    async def list_all() -> list[dict[str, Any]]:
        return [await view(ctrl, kind, cid) for cid in component_ids(ctrl, kind)]

    @router.post(f"/{kind}", status_code=201, summary=f"Create a {one}",
                 responses={400: {"description": "invalid, or ALREADY_EXISTS"}})
    async def create(request: Request,
                     body: Annotated[post_body, Body()]) -> dict[str, Any]:  # type: ignore[valid-type]
        raw = await _json_object(request)
        type_name, name = str(raw.pop("type")), str(raw.pop("name"))
        cid = f"{type_name}:{name}"
        request.state.audit_target = cid
        if _stored(ctrl.data, kind, cid) is not None:
            raise bad_request(f"{one} {cid} already exists", code="ALREADY_EXISTS")
        _check_secrets(ctrl, registry, f"{kind}.{type_name}.{name}", raw, None)

        def add(data: dict[str, Any]) -> None:
            if _stored(data, kind, cid) is not None:
                raise bad_request(f"{one} {cid} already exists", code="ALREADY_EXISTS")
            data.setdefault(kind, {}).setdefault(type_name, {})[name] = raw

        await ctrl.change(add)
        return await view(ctrl, kind, cid)

    @router.get(f"/{kind}/{{id}}", summary=f"Get a {one}")
    async def get_one(id: str) -> dict[str, Any]:
        return await view(ctrl, kind, id)

    @router.put(f"/{kind}/{{id}}", summary=f"Update a {one}'s settings")
    async def update(id: str, request: Request,
                     body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        old = require(id)
        type_name, name = _split(id)
        new = {k: v for k, v in body.items() if k not in ("type", "name")}
        _check_secrets(ctrl, registry, f"{kind}.{type_name}.{name}", new, old)
        new = restore(new, old)

        def put(data: dict[str, Any]) -> None:
            entries_of(data, id)[name] = new

        await ctrl.change(put)
        return await view(ctrl, kind, id)

    @router.delete(f"/{kind}/{{id}}", status_code=204, summary=f"Delete a {one}")
    async def delete(id: str,
                     also_delete_dep_actions: bool = Query(False)) -> Response:
        require(id)
        type_name, name = _split(id)
        if kind == "connectors" and (deps := dependents(ctrl, id)):
            raise bad_request(f"cannot delete connector {id}: used by {', '.join(deps)}",
                              dependents=deps)
        users = rules_using(ctrl, kind, id) if kind != "connectors" else []
        if users and not (kind == "actions" and also_delete_dep_actions):
            raise bad_request(f"cannot delete {one} {id}: used by rules {', '.join(users)}",
                              rules=users)

        def remove(data: dict[str, Any]) -> None:
            entries = entries_of(data, id)
            del entries[name]
            if not entries:
                del data[kind][type_name]
            for rid in users:
                rule = (data.get("rules") or {}).get(rid)
                if isinstance(rule, dict):
                    rule["actions"] = [a for a in rule.get("actions", []) if a != id]

        await ctrl.change(remove)
        return Response(status_code=204)

    @router.put(f"/{kind}/{{id}}/enable/{{enable}}", status_code=204,
                summary=f"Enable or disable a {one}")
    async def enable(id: str, enable: bool) -> Response:
        require(id)
        name = _split(id)[1]

        def set_enable(data: dict[str, Any]) -> None:
            entries_of(data, id)[name]["enable"] = enable

        await ctrl.change(set_enable)
        return Response(status_code=204)

    @router.post(f"/{kind}_probe", status_code=204, summary=f"Test a {one} without saving it",
                 responses={400: {"description": "invalid, or TEST_FAILED"}})
    async def probe(request: Request,
                    body: Annotated[post_body, Body()]) -> Response:  # type: ignore[valid-type]
        raw = await _json_object(request)
        type_name, name = str(raw.pop("type")), str(raw.pop("name"))
        current = ctrl.data
        _check_secrets(ctrl, registry, f"{kind}.{type_name}.{name}", raw,
                       _stored(current, kind, f"{type_name}:{name}"))

        def validate() -> Any:
            data = copy.deepcopy(current)
            entries = data.setdefault(kind, {}).setdefault(type_name, {})
            entries[name] = restore(raw, entries.get(name))
            return ctrl.validate(data)

        try:
            cfg = await asyncio.to_thread(validate)
        except ConfigError as exc:
            raise ApiError(400, "BAD_REQUEST", "; ".join(
                f"{p}: {m}" for p, m in exc.problems if p.startswith(f"{kind}."))
                or str(exc)) from None
        health = await _probe(ctrl, kind, getattr(cfg, kind)[f"{type_name}:{name}"])
        if health.status is not Status.CONNECTED:
            raise bad_request(f"{type_name}:{name}: {health.status}: {health.reason}",
                              code="TEST_FAILED")
        return Response(status_code=204)

    if kind == "connectors":
        return router

    @router.get(f"/{kind}/{{id}}/metrics", summary=f"A {one}'s counters and rates")
    async def metrics(id: str) -> dict[str, Any]:
        require(id)
        return metrics_view(ctrl, kind, id)

    @router.put(f"/{kind}/{{id}}/metrics/reset", status_code=204,
                summary=f"Zero a {one}'s counters")
    async def reset(id: str) -> Response:
        require(id)
        component = getattr(ctrl.app, kind).get(id)
        if component is not None:
            component.metrics.reset()
        return Response(status_code=204)

    @router.get(f"/{kind}_summary", summary=f"Every {one} with its status and rules")
    async def summary() -> list[dict[str, Any]]:
        out = []
        for cid in component_ids(ctrl, kind):
            spec = getattr(ctrl.app.config, kind)[cid]
            health = await component_status(ctrl, kind, cid)
            created, modified = ctrl.times.get(f"{kind}/{cid}",
                                               (ctrl.loaded_at, ctrl.loaded_at))
            out.append({"type": spec.type.name, "name": spec.name, "enable": spec.enabled,
                        "connector": getattr(spec.config, "connector", None),
                        "status": str(health.status), "status_reason": health.reason,
                        "rules": rules_using(ctrl, kind, cid),
                        "created_at": created, "last_modified_at": modified})
        return out

    return router


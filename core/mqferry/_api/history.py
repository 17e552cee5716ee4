"""``/actions/:id/metrics/history`` and ``/sources/:id/metrics/history``: the last hour of a
component's metrics (see :mod:`mqferry._metrics.history`), so a chart opened during an incident
starts with what happened before it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from mqferry._api.errors import not_found
from mqferry._runtime.reconfig import Controller

__all__ = ["history_router"]

_SINGULAR = {"actions": "action", "sources": "source"}


def history_router(ctrl: Controller) -> APIRouter:
    """The history routes of actions and sources."""
    router = APIRouter(tags=["metrics"])

    def add(kind: str) -> None:
        @router.get(f"/{kind}/{{id}}/metrics/history",
                    summary=f"The last hour of a {_SINGULAR[kind]}'s metrics, every 5 seconds")
        async def history(id: str, since: float | None = Query(
                None, description="only samples after this time (epoch milliseconds)"),
                ) -> dict[str, Any]:
            history = ctrl.app.history
            if id not in getattr(ctrl.app.config, kind) and not history.tracked(kind, id):
                raise not_found(f"{_SINGULAR[kind]} {id}")
            return {"id": id, **history.series(kind, id, since)}

    for kind in _SINGULAR:
        add(kind)
    return router

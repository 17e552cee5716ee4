"""``/nodes``: the nodes of the cluster, and the cluster's totals of a component's metrics.

The nodes are those :class:`~mqferry._cluster.nodes.NodeDirectory` hears heartbeats from, in
EMQX's shape (``node``, ``node_status``, ``version``, ``uptime`` in milliseconds, ``load1``...,
``memory_total``/``memory_used`` in bytes), with what runs on each (``runs``). Without a cluster
the list holds this node only. A metrics endpoint answers, as EMQX's, with ``metrics`` = the sum
over the running nodes' latest snapshots (counters, gauges and rates alike) and ``node_metrics``
= each node's own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter

from mqferry._api.errors import not_found
from mqferry._cluster.nodes import directory_of, local_heartbeat
from mqferry._runtime.app import App
from mqferry._runtime.reconfig import Controller

__all__ = ["cluster_metrics", "node_views", "nodes_router"]

#: Heartbeat fields that are not part of a node's view (the metrics have their own endpoints).
_HIDDEN = frozenset({"metrics", "status", "at"})
#: The instance id of a node without a cluster (drawn once per process, as a cluster node's).
_ALONE = uuid.uuid4().hex


def _view(beat: Mapping[str, Any]) -> dict[str, Any]:
    out = {"node": beat["node"],
           "node_status": "running" if beat.get("status") == "running" else "stopped",
           "role": "core"}
    out.update((k, v) for k, v in beat.items() if k not in _HIDDEN and k != "node")
    return out


def node_views(app: App) -> list[dict[str, Any]]:
    """Every node of the cluster (this one alone without a cluster), sorted by name."""
    directory = directory_of(app)
    beats = directory.nodes() if directory is not None else [
        local_heartbeat(app, instance=_ALONE)]
    return [_view(b) for b in beats]


def _add(total: dict[str, float], snap: Mapping[str, Any]) -> None:
    for name, value in snap.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            total[name] = total.get(name, 0) + value


def cluster_metrics(app: App, cid: str, local: dict[str, float],
                    rename: Callable[[str], str] = str) -> dict[str, Any]:
    """``{"metrics": total, "node_metrics": [{"node", "metrics"}]}`` of component ``cid``.

    Args:
        app: this node's app.
        cid: the component id as in the heartbeats' metrics (``rule:<id>``, ``<type>:<name>``).
        local: this node's snapshot, as the endpoint shows it (zeros when it does not run).
        rename: maps the snapshot names of the other nodes to the endpoint's (a rule's rates).
    """
    directory = directory_of(app)
    per_node = directory.node_metrics() if directory is not None else {}
    node_metrics: list[dict[str, Any]] = [{"node": app.node, "metrics": local}]
    for node, components in sorted(per_node.items()):
        snap = components.get(cid)
        if node == app.node or not isinstance(snap, dict):
            continue  # this node's is ``local``; a node not running the component adds nothing
        node_metrics.append({"node": node, "metrics": {rename(k): v for k, v in snap.items()}})
    node_metrics.sort(key=lambda entry: str(entry["node"]))
    if len(node_metrics) == 1:
        return {"metrics": local, "node_metrics": node_metrics}
    total: dict[str, float] = {}
    for entry in node_metrics:
        _add(total, entry["metrics"])
    return {"metrics": total, "node_metrics": node_metrics}


def nodes_router(ctrl: Controller) -> APIRouter:
    """``GET /nodes`` and ``GET /nodes/{node}``."""
    router = APIRouter(tags=["nodes"])

    @router.get("/nodes", summary="The nodes of the cluster: status, version, uptime, load, "
                                  "what runs on each")
    async def nodes() -> list[dict[str, Any]]:
        return node_views(ctrl.app)

    @router.get("/nodes/{node}", summary="One node of the cluster")
    async def one(node: str) -> dict[str, Any]:
        for view in node_views(ctrl.app):
            if view["node"] == node:
                return view
        raise not_found(f"node {node}")

    return router

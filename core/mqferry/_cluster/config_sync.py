"""The cluster's shared configuration: one version in the ``config`` log, applied by every node.

The shared sections (:data:`SHARED_SECTIONS`) are the value of the log's ``config`` key; the
others (``node``, ``api``, ``data_dir``, ``log``, ``cluster``) stay each node's own. A change is
validated once, on the node that receives it, and written compare-and-set
(:class:`~mqferry._cluster.shared.SharedLog`); every node, the writer included, applies each
accepted version through its :class:`~mqferry._runtime.reconfig.Controller`, as a local
reconfiguration, and writes it back to its file.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mqferry._cluster.shared import SharedLog, SharedValue, fingerprint
from mqferry._errors import MqferryError
from mqferry._runtime.reconfig.controller import ConfigConflictError
from mqferry._tasks import Supervisor

if TYPE_CHECKING:
    from mqferry._config.loader import AppConfig
    from mqferry._runtime.reconfig import Controller
    from mqferry._runtime.reconfig.plan import Plan

log = logging.getLogger(__name__)

__all__ = ["CONFIG_KEY", "SHARED_SECTIONS", "ClusterConfigError", "ClusterConflictError",
           "SharedConfig", "differing_ids", "shared_part", "with_shared"]

#: The sections every node of a cluster runs alike.
SHARED_SECTIONS = ("mqtt", "connectors", "actions", "sources", "rules")
#: The key of the configuration in the ``config`` log.
CONFIG_KEY = "config"


class ClusterConflictError(ConfigConflictError):
    """A change lost the race: the cluster's configuration changed since it was read (409)."""


class ClusterConfigError(MqferryError):
    """This node's file is a configuration the cluster never had: it must not join."""


def shared_part(data: dict[str, Any]) -> dict[str, Any]:
    """The shared sections of a configuration mapping (empty ones left out)."""
    return {s: copy.deepcopy(data[s]) for s in SHARED_SECTIONS if data.get(s)}


def with_shared(data: dict[str, Any], shared: dict[str, Any]) -> dict[str, Any]:
    """``data`` (this node's own sections) with the shared sections of ``shared``."""
    out = {k: v for k, v in data.items() if k not in SHARED_SECTIONS}
    out.update(copy.deepcopy(shared))
    return out


def differing_ids(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs between two shared parts: ``mqtt``, ``rules/<id>``, ``<kind>/<type>:<name>``."""
    out = ["mqtt"] if (a.get("mqtt") or {}) != (b.get("mqtt") or {}) else []
    for kind in ("connectors", "actions", "sources"):
        ta, tb = a.get(kind) or {}, b.get(kind) or {}
        for type_name in sorted(set(ta) | set(tb)):
            ea, eb = ta.get(type_name) or {}, tb.get(type_name) or {}
            out += [f"{kind}/{type_name}:{n}" for n in sorted(set(ea) | set(eb))
                    if ea.get(n) != eb.get(n)]
    ra, rb = a.get("rules") or {}, b.get("rules") or {}
    out += [f"rules/{r}" for r in sorted(set(ra) | set(rb)) if ra.get(r) != rb.get(r)]
    return out


@dataclass(slots=True)
class _Proposal:
    data: dict[str, Any]
    config: AppConfig


class SharedConfig:
    """Keeps a node's configuration on the cluster's version.

    Args:
        shared: the ``config`` log, read in order.
        cluster: the cluster's name (for messages).
        timeout: how long the start-up waits for the log, in seconds.
    """

    def __init__(self, shared: SharedLog, *, cluster: str, timeout: float) -> None:
        self.shared = shared
        self.cluster = cluster
        self.timeout = timeout
        #: The cluster version the running configuration is (0: the file's, not synced yet).
        self.applied = 0
        #: What this node says about its configuration in ``/status`` (``None``: in sync).
        self.note: str | None = None
        #: Why the last accepted version could not be applied here.
        self.error: str | None = None
        self._controller: Controller | None = None
        self._wake = asyncio.Event()
        self._attached = asyncio.Event()
        self._done = asyncio.Condition()
        self._results: dict[int, Plan | BaseException] = {}
        self._proposals: dict[str, _Proposal] = {}
        self.applier = Supervisor(f"mqferry[cluster:{cluster}].config", self._apply_loop)
        shared.listen(self._changed)

    # -- start-up ---------------------------------------------------------------------------

    async def settle(self, file_data: dict[str, Any]) -> dict[str, Any]:
        """Agree with the cluster on the configuration to start with (the log has been read).

        An empty cluster is seeded with the file's shared sections. A file equal to the
        cluster's version, or to an earlier one ("behind"), runs the cluster's.

        Returns:
            The configuration mapping to build the app from.

        Raises:
            ClusterConfigError: the file matches no version the cluster has had.
            MqferryError: the log could not be written.
        """
        mine = shared_part(file_data)
        mark = fingerprint(mine)
        for _ in range(3):
            state = self.shared.value(CONFIG_KEY)
            if state.value is None:
                outcome = await self.shared.write(CONFIG_KEY, mine, base=0)
                if outcome.accepted:
                    log.info("cluster %s: seeded with this file's configuration (version %d)",
                             self.cluster, outcome.version)
                    self.applied = outcome.version
                    return file_data
                continue  # another node seeded first: compare with its configuration
            self.applied = state.version
            if fingerprint(state.value) == mark:
                log.info("cluster %s: the file matches the cluster's configuration (version %d)",
                         self.cluster, state.version)
                return file_data
            ids = differing_ids(mine, state.value)
            if mark in state.history:
                self.note = (f"the file was behind the cluster's configuration (version "
                             f"{state.version}); running the cluster's, which differs in: "
                             f"{', '.join(ids)}")
                log.info("cluster %s: %s", self.cluster, self.note)
                return with_shared(file_data, state.value)
            raise ClusterConfigError(
                f"cluster {self.cluster!r}: this file's configuration was never the cluster's "
                f"(the cluster is at version {state.version}, written by {state.node}; they "
                f"differ in: {', '.join(ids)}). Two different configurations share one "
                f"cluster.name: give this one another cluster.name, or make its "
                f"{', '.join(SHARED_SECTIONS)} sections match the cluster's (copy them from "
                "a running node's file). Nothing was written.")
        raise MqferryError(f"cluster {self.cluster!r}: could not agree on a configuration")

    async def converge(self) -> None:
        """Start-up without the log: keep trying; seed it when empty, else take the cluster's.

        The running configuration is the file's until then (:attr:`applied` is 0).
        """
        delay = 1.0
        while True:
            try:
                await self.shared.caught_up(self.timeout)
                break
            except MqferryError as exc:
                self.note = (f"the cluster's configuration log cannot be read ({exc}); running "
                             "this file's configuration until it can")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.note = None  # readable: the status says so before the first version applies
        await self._attached.wait()  # seeding needs the running configuration
        ctrl = self._controller
        state = self.shared.value(CONFIG_KEY)
        if state.value is None and ctrl is not None:
            try:
                await self.propose(ctrl.data, None)
            except (ClusterConflictError, MqferryError) as exc:
                log.info("cluster %s: not seeded from this node: %s", self.cluster, exc)
        elif state.value is not None and ctrl is not None:
            ids = differing_ids(shared_part(ctrl.data), state.value)
            if ids:
                log.warning("cluster %s: the log is readable again; taking the cluster's "
                            "configuration (version %d), which differs in: %s",
                            self.cluster, state.version, ", ".join(ids))
        self._wake.set()

    # -- running ----------------------------------------------------------------------------

    def attach(self, controller: Controller) -> None:
        """Apply the cluster's versions to ``controller``'s app from now on."""
        self._controller = controller
        controller.cluster = self
        self._attached.set()
        self.applier.start()
        self._wake.set()

    async def stop(self) -> None:
        """Stop applying (idempotent)."""
        await self.applier.stop()

    async def propose(self, data: dict[str, Any], config: AppConfig | None,
                      base: int | None = None) -> Plan:
        """Write ``data``'s shared sections as the next version; return once applied here.

        Args:
            data: the whole new configuration mapping (validated).
            config: its validated form, reused when this node applies it.
            base: the version ``data`` was made from (:attr:`applied` when it was read).

        Raises:
            ClusterConflictError: another change was written first; nothing changed.
            MqferryError: the log could not be written or read back.
        """
        base = self.applied if base is None else base
        value = shared_part(data)
        mark = fingerprint(value)
        state = self.shared.value(CONFIG_KEY)
        if (state.value is not None and base == state.version == self.applied
                and fingerprint(state.value) == mark):
            from mqferry._runtime.reconfig.plan import Plan

            return Plan()  # the cluster runs this already (a reload of an unchanged file)
        if config is not None:
            # Registered before the write: this node may apply the version as soon as it
            # reads the record back, before this coroutine runs again.
            self._proposals[mark] = _Proposal(data, config)
        try:
            outcome = await self.shared.write(CONFIG_KEY, value, base=base)
            if not outcome.accepted:
                raise ClusterConflictError(
                    f"the cluster's configuration changed since it was read (now version "
                    f"{outcome.version}): read it again and repeat the change")
            self._wake.set()
            async with self._done:
                await self._done.wait_for(lambda: self.applied >= outcome.version)
        finally:
            self._proposals.pop(mark, None)
        result = self._results.pop(outcome.version, None)
        if isinstance(result, BaseException):
            raise result
        if result is None:
            from mqferry._runtime.reconfig.plan import Plan

            return Plan()  # a later version was applied at once
        return result

    def status(self) -> dict[str, Any]:
        """The configuration part of the node's ``/status`` entry."""
        state = self.shared.value(CONFIG_KEY)
        out: dict[str, Any] = {"config_version": self.applied,
                               "cluster_config_version": state.version}
        if self.note is not None:
            out["config_note"] = self.note
        if self.error is not None:
            out["config_error"] = self.error
        return out

    def _changed(self, key: str, _: SharedValue) -> None:
        if key == CONFIG_KEY:
            self._wake.set()

    async def _apply_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            state = self.shared.value(CONFIG_KEY)
            ctrl = self._controller
            if ctrl is None or state.value is None or state.version == self.applied:
                continue
            version = state.version
            proposal = self._proposals.get(fingerprint(state.value))
            result: Plan | BaseException
            try:
                if proposal is not None:
                    result = await ctrl.adopt(proposal.data, proposal.config)
                else:
                    result = await ctrl.adopt(with_shared(ctrl.data, state.value), None)
                self.error = None
                log.info("cluster %s: applied configuration version %d (written by %s)",
                         self.cluster, version, state.node)
            except Exception as exc:  # a version this node cannot run: say so, keep running
                result = exc
                self.error = f"version {version}: {exc}"
                log.error("cluster %s: configuration version %d could not be applied on this "
                          "node: %s", self.cluster, version, exc)
            # Set at once after adopt() returns: a change reads data and applied together.
            self.applied = version
            self._results[version] = result
            for old in [v for v in self._results if v < version - 16]:
                del self._results[old]
            async with self._done:
                self._done.notify_all()

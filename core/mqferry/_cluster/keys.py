"""The API keys of a cluster: one set in the ``config`` log, each node's key file a replica.

``mqferry api-key create -c FILE`` (or an edit of the file) changes a node's file; the running
node sees the change and writes it to the cluster, compare-and-set like the configuration; every
node then accepts the key and writes it to its own file. The file remembers which keys it last
agreed with the cluster on (``cluster.synced``: key id -> fingerprint), so a key the cluster
deleted is not brought back by a file that still holds it, and a key made in the file while the
node was stopped joins the cluster when it starts.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from mqferry._api.keys import ApiKey, KeyStore, key_as_dict
from mqferry._cluster.shared import SharedLog, fingerprint
from mqferry._errors import MqferryError
from mqferry._tasks import Supervisor

log = logging.getLogger(__name__)

__all__ = ["KEYS_KEY", "SharedKeyStore"]

#: The key of the API keys in the ``config`` log.
KEYS_KEY = "api_keys"


class SharedKeyStore(KeyStore):
    """The cluster's API keys, checked per request; the node's key file follows them.

    Args:
        path: this node's key file.
        shared: the cluster's ``config`` log.
        cluster: the cluster's name (kept in the file).
        interval: how often the file is looked at for changes, in seconds.
    """

    def __init__(self, path: str | Path, shared: SharedLog, *, cluster: str,
                 interval: float = 0.5) -> None:
        super().__init__(path)
        self.shared = shared
        self.cluster = cluster
        self.interval = interval
        self._parsed: tuple[int, dict[str, ApiKey]] = (-1, {})
        self.syncer = Supervisor(f"mqferry[cluster:{cluster}].api_keys", self._run)

    def keys(self) -> dict[str, ApiKey]:
        """The cluster's keys (the file's until the cluster has any)."""
        state = self.shared.value(KEYS_KEY)
        if state.value is None:
            return self.file_keys()
        if self._parsed[0] != state.version:
            try:
                keys = {k["api_key"]: ApiKey(**k) for k in state.value}
            except (TypeError, KeyError) as exc:  # written by a newer or broken node
                log.error("cluster %s: the API keys of version %d are unreadable: %s",
                          self.cluster, state.version, exc)
                keys = {}
            self._parsed = (state.version, keys)
        return self._parsed[1]

    def file_keys(self) -> dict[str, ApiKey]:
        """The keys in this node's file."""
        return super().keys()

    def start(self) -> None:
        """Keep the file and the cluster in step, in the background."""
        self.syncer.start()

    async def stop(self) -> None:
        """Stop (idempotent)."""
        await self.syncer.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except MqferryError as exc:
                log.warning("cluster %s: API keys not synchronised: %s", self.cluster, exc)
            except OSError as exc:
                log.error("cluster %s: the key file %s: %s", self.cluster, self.path, exc)
            await asyncio.sleep(self.interval)

    async def sync(self) -> None:
        """One step: write the file's changes to the cluster, or the cluster's to the file.

        Raises:
            MqferryError: the log could not be written.
            OSError: the file could not be written.
        """
        if not self.shared.caught:
            return  # what the log says is not yet known to be the cluster's
        state = self.shared.value(KEYS_KEY)
        mine = {k: key_as_dict(v) for k, v in self.file_keys().items()}
        synced = self._synced()
        theirs = {k["api_key"]: k for k in state.value or []}
        changed = {k: v for k, v in mine.items()
                   if synced.get(k) != fingerprint(v) and theirs.get(k) != v}
        gone = [k for k in synced if k not in mine and k in theirs]
        if changed or gone or (state.value is None and mine):
            new = {k: v for k, v in theirs.items() if k not in gone} | changed
            outcome = await self.shared.write(KEYS_KEY, sorted(new.values(),
                                                               key=lambda k: k["api_key"]),
                                              base=state.version)
            if not outcome.accepted:
                return  # another node's change came first: merge again at the next step
            log.info("cluster %s: API keys changed from this node's file: %s", self.cluster,
                     ", ".join([f"+{v['name']}" for v in changed.values()]
                               + [f"-{k}" for k in gone]))
            state = self.shared.value(KEYS_KEY)
            theirs = {k["api_key"]: k for k in state.value or []}
        if state.value is None:
            return
        marks = {k: fingerprint(v) for k, v in theirs.items()}
        if mine != theirs or synced != marks:
            await asyncio.to_thread(
                self._write, {k: ApiKey(**v) for k, v in theirs.items()},
                {"cluster": {"name": self.cluster, "synced": marks}})

    def _synced(self) -> dict[str, str]:
        try:
            raw = json.loads(self.path.read_text())
            synced = raw.get("cluster", {}).get("synced", {})
            return {str(k): str(v) for k, v in synced.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError) as exc:
            log.error("cluster %s: cannot read %s: %s", self.cluster, self.path, exc)
            return {}

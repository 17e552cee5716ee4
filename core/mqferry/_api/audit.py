"""The audit log: every change made through the API (and so through the console and the CLI).

One JSON object a line, in a file beside the key store (mode 0600): when, which key (id, name,
role), from where, what (method, path, target id) and the result (HTTP status). Never a body, a
query string or a header, so never a secret. The file is bounded: past ``max_bytes`` it is moved to
``<name>.1`` (replacing the previous one) and a new file starts, so at most twice ``max_bytes``
are kept. Requests that only read are not logged; refused attempts to change (401, 403) are.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mqferry._api.keys import parse_basic
from mqferry._api.roles import READ_METHODS

log = logging.getLogger(__name__)

__all__ = ["AUDIT_FILE", "AuditLog", "AuditMiddleware"]

AUDIT_FILE = "audit.jsonl"
_MAX_BYTES = 8 * 1024 * 1024


class AuditLog:
    """The audit file.

    Args:
        path: the JSON lines file (created 0600).
        max_bytes: the size past which the file is rotated.
    """

    def __init__(self, path: str | Path, *, max_bytes: int = _MAX_BYTES) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes

    def write(self, entry: dict[str, Any]) -> None:
        """Append one entry; an error is logged, never raised (the change is already made)."""
        line = (json.dumps(entry, separators=(",", ":"), sort_keys=True) + "\n").encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                if self.path.stat().st_size + len(line) > self.max_bytes:
                    self.path.replace(self.backup)
            # A few hundred bytes per change, and changes are rare: written in the event loop.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("cannot write the audit log %s: %s; lost: %s", self.path,
                      exc.strerror or exc, line.decode().strip())

    @property
    def backup(self) -> Path:
        """Where the previous file goes on rotation."""
        return self.path.with_name(self.path.name + ".1")

    def tail(self, limit: int) -> list[dict[str, Any]]:
        """The latest ``limit`` entries, newest first."""
        lines: deque[str] = deque(maxlen=limit)
        for path in (self.backup, self.path):
            with contextlib.suppress(FileNotFoundError), \
                    path.open(encoding="utf-8", errors="replace") as fh:
                lines.extend(fh)
        out = []
        for line in reversed(lines):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out


class AuditMiddleware:
    """Writes an entry for every request under ``prefix`` that is not a read.

    Outermost, so a request refused by any layer (size, key, role) is logged with its status.
    The key is what the key check put in ``scope["state"]["api_key"]``; the target is the route's
    ``id`` or what the endpoint put in ``scope["state"]["audit_target"]`` (a create).
    """

    def __init__(self, app: ASGIApp, *, log_file: AuditLog, prefix: str) -> None:
        self.app = app
        self.log = log_file
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] in READ_METHODS
                or scope["method"] == "OPTIONS" or not scope["path"].startswith(self.prefix)):
            await self.app(scope, receive, send)
            return
        status = 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.time()
        try:
            await self.app(scope, receive, record)
        finally:
            self.log.write(_entry(scope, status, started))


def _entry(scope: Scope, status: int, started: float) -> dict[str, Any]:
    state = scope.get("state") or {}
    key = state.get("api_key")
    if key is not None:
        who: dict[str, Any] = {"api_key": key.api_key, "name": key.name, "role": key.role}
    else:
        # Not authenticated: the key id it claimed, if any (never the secret).
        headers = dict(scope.get("headers") or ())
        pair = parse_basic(headers.get(b"authorization", b"").decode("latin-1"))
        who = {"api_key": pair[0][:64] if pair else None, "name": None, "role": None}
    target = (scope.get("path_params") or {}).get("id") or state.get("audit_target")
    client = scope.get("client")
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started))
                    + f".{int(started * 1000) % 1000:03d}Z",
            **who, "source": client[0] if client else None, "method": scope["method"],
            "path": scope["path"], "target": target, "status": status}

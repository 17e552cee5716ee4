"""Serve the API with uvicorn inside the runtime's event loop.

The socket is bound here, so a port in use is one logged error and the data path keeps running;
signals stay with the runtime (uvicorn would otherwise take SIGINT and SIGTERM for itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Generator

import uvicorn
from fastapi import FastAPI

from mqferry._config.models import ApiConfig
from mqferry._tasks import cancel_requests

log = logging.getLogger(__name__)

__all__ = ["ApiServer"]


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the runtime owns the signal handlers


class ApiServer:
    """The API listener of one instance.

    Args:
        api: the FastAPI application.
        config: the ``api`` section.
    """

    def __init__(self, api: FastAPI, config: ApiConfig) -> None:
        self.config = config
        ssl_opts = config.ssl
        self._uv = uvicorn.Config(
            api, log_config=None, access_log=False, lifespan="off",
            ssl_certfile=ssl_opts.certfile if ssl_opts.enable else None,
            ssl_keyfile=ssl_opts.keyfile if ssl_opts.enable else None,
            ssl_ca_certs=ssl_opts.cacertfile if ssl_opts.enable else None,
            ssl_cert_reqs=(ssl.CERT_REQUIRED if ssl_opts.enable and ssl_opts.cacertfile
                           else ssl.CERT_NONE),
        )
        self._server = _Server(self._uv)
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self) -> bool:
        """Bind and start serving; ``False`` (logged) when the address cannot be bound."""
        try:
            self._uv.load()
        except (OSError, ssl.SSLError) as exc:
            log.error("the API cannot start: TLS: %s; running without it", exc)
            return False
        host, port = self.config.host, self.config.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            log.error("the API cannot listen on %s: %s; running without it",
                      self.config.listen, exc.strerror or exc)
            return False
        sock.set_inheritable(True)
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]),
                                         name="mqferry[api].serve")
        # uvicorn reports start-up with a flag, not an event.
        while not self._server.started and not self._task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self._task.done():
            log.error("the API did not start: %r", self._task.exception())
            return False
        scheme = "https" if self.config.ssl.enable else "http"
        log.info("API listening on %s://%s:%d/api/v5", scheme, host, self.port)
        return True

    async def stop(self) -> None:
        """Stop serving (open requests get a few seconds). Idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        before = cancel_requests()
        try:
            async with asyncio.timeout(10):
                await task
        except TimeoutError:
            task.cancel()
        except asyncio.CancelledError:
            task.cancel()
            if cancel_requests() > before:
                raise  # the caller's own cancellation
        except SystemExit:  # uvicorn exits on some start-up errors; never take the process down
            log.error("the API server exited")

"""The web console: the built single-page app served under ``/dashboard``.

The console is static files built from ``console/`` into ``mqferry/console_dist`` and talks to the
instance only through the public ``/api/v5`` paths, so it needs no key to load: signing in happens
in the page, with an API key and secret.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

log = logging.getLogger(__name__)

__all__ = ["CONSOLE_DIR", "PREFIX", "mount_console"]

#: Where the package keeps the built console.
CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console_dist"
PREFIX = "/dashboard"

# The page loads only its own files; the API it calls may be another instance (connect-src).
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src *; frame-ancestors 'none'; base-uri 'self'")


class _ConsoleFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        # Asset names carry a content hash, so they never change; index.html must be re-read.
        immutable = path.startswith("assets/") and response.status_code == 200
        response.headers["Cache-Control"] = ("public, max-age=31536000, immutable" if immutable
                                             else "no-cache")
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def mount_console(api: FastAPI, directory: Path = CONSOLE_DIR) -> bool:
    """Serve the built console under ``/dashboard/`` (``/`` and ``/dashboard`` redirect there).

    Args:
        api: the instance's FastAPI application.
        directory: the built console (``index.html`` and ``assets/``).

    Returns:
        ``False`` (logged) when the package has no built console.
    """
    if not (directory / "index.html").is_file():
        log.warning("no built console in %s: /dashboard is not served", directory)
        return False

    async def to_console() -> Any:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    api.add_api_route(PREFIX, to_console, methods=["GET"], include_in_schema=False)
    api.add_api_route("/", to_console, methods=["GET"], include_in_schema=False)
    api.mount(PREFIX, _ConsoleFiles(directory=directory, html=True), name="console")
    return True

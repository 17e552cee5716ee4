"""``/api/v5/openapi.json`` and ``/api/v5/docs``: the OpenAPI document and Swagger UI, behind a key.

They are routes of the ``/api/v5`` router, so they take its key check like every other path (a
browser asks for the key and secret, answering the ``WWW-Authenticate: Basic`` challenge). Swagger
UI is served from the files vendored in ``mqferry/_api/swagger`` (see its README), never a CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from mqferry._api.errors import not_found
from mqferry._api.openapi_errors import declare_errors

__all__ = ["SWAGGER_DIR", "docs_routes"]

SWAGGER_DIR = Path(__file__).resolve().parent / "swagger"
_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
           "init.js": "text/javascript", "favicon-32x32.png": "image/png"}
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; frame-ancestors 'none'; base-uri 'self'")
_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} API</title>
<link rel="icon" href="docs/favicon-32x32.png">
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"""


def openapi_document(api: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, declaring the HTTP Basic key that every path needs."""
    if api.openapi_schema is None:
        doc = api.openapi()
        doc.setdefault("components", {})["securitySchemes"] = {
            "api_key": {"type": "http", "scheme": "basic",
                        "description": "An API key and its secret (`mqferry api-key create`)."}}
        doc["security"] = [{"api_key": []}]
        declare_errors(doc, "/api/v5/")
    return api.openapi_schema or {}


def docs_routes(router: APIRouter, api: FastAPI) -> None:
    """Add the document, the page and its assets to ``router`` (the ``/api/v5`` router)."""

    @router.get("/openapi.json", include_in_schema=False)
    async def document() -> JSONResponse:
        return JSONResponse(openapi_document(api))

    @router.get("/docs", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_PAGE.format(title=api.title), headers=_HEADERS)

    @router.get("/docs/{asset}", include_in_schema=False)
    async def asset(asset: str) -> FileResponse:
        media_type = _ASSETS.get(asset)
        if media_type is None:  # a fixed list: no path from the request reaches the file system
            raise not_found(f"docs/{asset}")
        return FileResponse(SWAGGER_DIR / asset, media_type=media_type, headers=_HEADERS)

"""The API's error shape, ``{"code": "BAD_REQUEST", "message": "..."}``, as EMQX answers.

Every error a client can cause is a 4xx with a message naming the field; handlers turn the
framework's and the config's errors into that shape, so bad input never becomes a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from mqferry._errors import ConfigError, MqferryError
from mqferry._runtime.reconfig import ConfigConflictError

log = logging.getLogger(__name__)

__all__ = ["ApiError", "bad_request", "install_handlers", "json_position", "not_found"]

_CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
          405: "METHOD_NOT_ALLOWED", 409: "CONFLICT", 412: "NOT_MATCH", 413: "PAYLOAD_TOO_LARGE",
          415: "BAD_REQUEST",
          500: "INTERNAL_ERROR", 503: "SERVICE_UNAVAILABLE"}


class ApiError(MqferryError):
    """An error answered as ``{"code", "message", ...extra}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def response(self) -> JSONResponse:
        """The JSON response."""
        headers = {"WWW-Authenticate": 'Basic realm="mqferry"'} if self.status == 401 else None
        return JSONResponse({"code": self.code, "message": self.message, **self.extra},
                            status_code=self.status, headers=headers)


def bad_request(message: str, code: str = "BAD_REQUEST", **extra: Any) -> ApiError:
    """A 400."""
    return ApiError(400, code, message, **extra)


def not_found(what: str) -> ApiError:
    """A 404 naming what is missing."""
    return ApiError(404, "NOT_FOUND", f"{what} not found")


def config_problems(exc: ConfigError) -> ApiError:
    """A 400 listing every config problem as ``path.to.field: message``."""
    lines = [f"{p}: {m}" if p else m for p, m in exc.problems]
    return bad_request("; ".join(lines), problems=[{"path": p, "message": m}
                                                   for p, m in exc.problems])


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


#: pydantic's error types for a body that is not a JSON object at all
_NOT_AN_OBJECT = frozenset({"dict_type", "model_attributes_type", "model_type"})


def json_position(body: bytes, pos: int) -> tuple[int, int]:
    """Line and column (both from 1) of character ``pos`` of the JSON text ``body``.

    ``pos`` counts characters, as :class:`json.JSONDecodeError` does (the body decoded first).
    """
    before = body.decode("utf-8", "replace")[:pos]
    line = before.count("\n") + 1
    return line, len(before) - (before.rfind("\n") + 1) + 1


async def _body_problem(request: Request, exc: RequestValidationError) -> str | None:
    """The message for a body that is not JSON, or is JSON sent without its content type.

    The framework says "body[22]: JSON decode error" for the one, and "Input should be a valid
    dictionary" for the other (it reads a body without ``Content-Type: application/json`` as
    raw bytes): neither tells the client what to change.
    """
    errors = exc.errors()
    if len(errors) != 1 or tuple(errors[0].get("loc", ()))[:1] != ("body",):
        return None
    err = errors[0]
    if err.get("type") == "json_invalid":
        loc = tuple(err.get("loc", ()))
        pos = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else 0
        reason = (err.get("ctx") or {}).get("error", "not JSON")
        line, column = json_position(await request.body(), pos)
        return f"invalid JSON at line {line}, column {column}: {reason}"
    content_type = request.headers.get("content-type")
    if err.get("type") in _NOT_AN_OBJECT and "json" not in (content_type or "").lower():
        sent = f"not {content_type!r}" if content_type else "the request has no Content-Type"
        return (f"send Content-Type: application/json: the body is read as JSON only with it "
                f"({sent})")
    return None


def install_handlers(app: FastAPI) -> None:
    """Answer every known error in the EMQX shape."""

    async def api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def config_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ConfigError)
        return config_problems(exc).response()

    async def conflict(_: Request, exc: Exception) -> JSONResponse:
        return ApiError(409, "CONFLICT", str(exc)).response()

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        body_problem = await _body_problem(request, exc)
        if body_problem is not None:
            return bad_request(body_problem).response()
        problems = []
        for err in exc.errors():
            msg = "unknown field" if err.get("type") == "extra_forbidden" else err.get("msg", "")
            problems.append(f"{_location(tuple(err.get('loc', ())))}: {msg}")
        return bad_request("; ".join(problems) or "invalid request").response()

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _CODES.get(exc.status_code, "BAD_REQUEST")
        return ApiError(exc.status_code, code, str(exc.detail)).response()

    async def known(_: Request, exc: Exception) -> JSONResponse:
        return bad_request(str(exc)).response()

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %r", request.method, request.url.path, exc, exc_info=exc)
        return ApiError(500, "INTERNAL_ERROR", "internal error; see the mqferry log").response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(ConfigError, config_error)
    app.add_exception_handler(ConfigConflictError, conflict)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(MqferryError, known)
    app.add_exception_handler(Exception, unexpected)

"""Request body limits, enforced before a body reaches the framework: size and JSON depth.

A body larger than ``api.max_body_size`` is refused with 413 from its ``Content-Length`` alone, or,
when it is sent in chunks, as soon as the bytes received pass the limit: it is never held whole in
memory. A JSON body nested deeper than ``api.max_json_depth`` is refused with 400 before it is
parsed, so no parser, validator or write-back ever recurses on it.
"""

from __future__ import annotations

import asyncio
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mqferry._api.errors import ApiError, bad_request
from mqferry._config.units import format_size

__all__ = ["BodyLimits", "json_too_deep"]

#: A JSON string literal (escapes included), written so the engine never backtracks.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKETS = bytes.maketrans(b"[{]}", b"(())")
#: Bodies above this size are checked in a worker thread, off the event loop.
_THREAD_ABOVE = 64 * 1024


def json_too_deep(body: bytes, limit: int) -> bool:
    """Whether the JSON text ``body`` nests objects and arrays deeper than ``limit``.

    Works on the text, in time linear in its size and without recursion: string literals are
    dropped, the brackets left are reduced to ``(`` and ``)``, and each pass removes every
    innermost pair; a pair still left after ``limit`` passes is deeper than the limit. Text that
    is not JSON may pass; the parser refuses it.
    """
    skeleton = _STRING.sub(b"", body).translate(_BRACKETS, _NOT_BRACKET)
    # A run of more than ``limit`` openings is too deep at once (balanced or not: pair removal
    # never reaches unbalanced ones); checking after each pass ends most deep cases early.
    run = b"(" * (limit + 1)
    for _ in range(limit):
        if run in skeleton:
            return True
        if b"()" not in skeleton:
            return False
        skeleton = skeleton.replace(b"()", b"")
    return b"()" in skeleton or run in skeleton


class BodyLimits:
    """ASGI middleware refusing request bodies that are too large (413) or too deep (400).

    The body is read (up to the limit) before the application runs and handed to it whole.

    Args:
        app: the application.
        max_size: the largest body, in bytes.
        max_depth: the deepest JSON nesting.
    """

    def __init__(self, app: ASGIApp, *, max_size: int, max_depth: int) -> None:
        self.app = app
        self.max_size = max_size
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope.get("headers") or ()) if scope["type"] == "http" else {}
        if b"content-length" not in headers and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # not HTTP, or no body
            return
        refusal, body = await self._read(headers, receive)
        if refusal is None and body is None:
            return  # the client went away
        if refusal is None and body:
            content_type = headers.get(b"content-type", b"application/json").lower()
            if b"json" in content_type and await self._too_deep(body):
                refusal = bad_request(f"the JSON body is nested deeper than {self.max_depth} "
                                      "levels (api.max_json_depth)")
        if refusal is not None:
            await refusal.response()(scope, receive, send)
            return
        await self.app(scope, _replay(body or b"", receive), send)

    async def _read(self, headers: dict[bytes, bytes],
                    receive: Receive) -> tuple[ApiError | None, bytes | None]:
        """The body, or why it is refused; ``(None, None)`` when the client went away."""
        length = headers.get(b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                return bad_request("invalid Content-Length"), None
            if int(length) > self.max_size:
                return self._too_large(), None
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None, None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_size:
                return self._too_large(), None
            chunks.append(chunk)
            more = bool(message.get("more_body"))
        return None, b"".join(chunks)

    async def _too_deep(self, body: bytes) -> bool:
        if len(body) > _THREAD_ABOVE:
            return await asyncio.to_thread(json_too_deep, body, self.max_depth)
        return json_too_deep(body, self.max_depth)

    def _too_large(self) -> ApiError:
        return ApiError(413, "PAYLOAD_TOO_LARGE",
                        f"the request body is larger than {format_size(self.max_size)} "
                        "(api.max_body_size)")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # what follows the body: a disconnect

    return replay

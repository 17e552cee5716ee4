"""The error responses every route can give, declared in the OpenAPI document.

Routes declare what they answer on success; the errors come from layers every route shares (the
key check, the body limits, validation, an unknown id), so they are declared here once, by what a
route takes: a key (401, 403), a path id (404), a body (400, 413, 415), a change (409, when the
configuration moved underneath it). A client generated from the document then knows the error
shape, ``{"code", "message", ...}``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ERROR_SCHEMA", "declare_errors"]

#: The body of every error: a code, a message naming what is wrong, and details besides.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error", "type": "object", "required": ["code", "message"],
    "additionalProperties": True,
    "properties": {"code": {"type": "string", "examples": ["BAD_REQUEST"]},
                   "message": {"type": "string"}}}
_REF = {"$ref": "#/components/schemas/Error"}

_WITH_BODY = frozenset({"post", "put", "patch"})
_CHANGES = frozenset({"post", "put", "patch", "delete"})
_WHY = {400: "invalid: the message names the field",
        401: "no key, an unknown key or a wrong secret", 403: "the key's role may not do this",
        404: "no such id",
        409: "the configuration changed since it was read", 413: "the body is too large",
        415: "the body is not JSON"}


def _statuses(path: str, method: str) -> set[int]:
    out = {400, 401, 403}  # 400: a path id, a query parameter or a body can be invalid
    if "{" in path:
        out.add(404)
    if method in _WITH_BODY:
        out |= {413, 415}
    if method in _CHANGES:
        out.add(409)
    return out


def declare_errors(doc: dict[str, Any], prefix: str) -> None:
    """Add the shared error responses to every operation of ``doc`` under ``prefix``, in place.

    The document is changed rather than the routes: the routes are the framework's objects, the
    document is ours once generated.
    """
    doc.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in doc.get("paths", {}).items():
        if not path.startswith(prefix):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in sorted(_statuses(path, method)):
                responses.setdefault(str(status), {
                    "description": _WHY[status],
                    "content": {"application/json": {"schema": _REF}}})

"""API key roles, as EMQX's: ``administrator`` may do everything, ``viewer`` may only read.

The check runs in the one dependency every ``/api/v5`` route takes (see ``mqferry._api.app``), so a
new route is covered without being listed: a viewer may call a ``GET`` route, unless the route
says it is for administrators (a read that reveals what a viewer must not see, such as the audit
log) with ``openapi_extra=ADMIN_ONLY``. Every other method changes something, or runs a probe that
reaches out with the stored settings, and is for administrators.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["ADMINISTRATOR", "ADMIN_ONLY", "READ_METHODS", "ROLES", "VIEWER", "allowed"]

ADMINISTRATOR: Final = "administrator"
VIEWER: Final = "viewer"
ROLES: Final = (ADMINISTRATOR, VIEWER)
READ_METHODS: Final = frozenset({"GET", "HEAD"})
_EXTRA_KEY = "x-mqferry-roles"
#: ``openapi_extra`` of a read-only route that only administrators may call (shown in OpenAPI).
ADMIN_ONLY: Final[dict[str, Any]] = {_EXTRA_KEY: [ADMINISTRATOR]}


def allowed(role: str, method: str, route: Any) -> bool:
    """Whether a key of ``role`` may call ``method`` on ``route`` (the matched route, or ``None``).

    An unknown role may do nothing: a key store edited by hand fails closed.
    """
    if role == ADMINISTRATOR:
        return True
    if role != VIEWER or method.upper() not in READ_METHODS:
        return False
    extra = getattr(route, "openapi_extra", None) or {}
    return VIEWER in extra.get(_EXTRA_KEY, ROLES)

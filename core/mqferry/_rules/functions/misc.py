"""UUIDs and environment variables."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

from mqferry._rules.functions._args import as_text

__all__ = ["ENV_PREFIX", "FUNCTIONS"]

#: Only variables with this prefix are readable from SQL (EMQX's rule, kept for compatibility).
ENV_PREFIX = "EMQXVAR_"


def uuid_v4() -> str:
    """A random UUID, with hyphens."""
    return str(uuid.uuid4())


def uuid_v4_no_hyphen() -> str:
    """A random UUID as 32 hex digits."""
    return uuid.uuid4().hex


def getenv(name: Any) -> str | None:
    """The value of environment variable ``EMQXVAR_<name>``, or undefined."""
    return os.environ.get(ENV_PREFIX + as_text(name))


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "uuid_v4": uuid_v4,
    "uuid_v4_no_hyphen": uuid_v4_no_hyphen,
    "getenv": getenv,
}

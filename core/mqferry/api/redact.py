"""Secrets in API responses: redacted by type (``Secret``) and, as a second guard, by key name.

A client that reads a config and sends it back unchanged sends ``******``; :func:`restore` puts the
stored value back, as EMQX does, so a round trip never overwrites a password with stars.
"""

from __future__ import annotations

import re
from typing import Any

from mqferry.config.secrets import REDACTED

__all__ = ["REDACTED", "redact", "restore"]

_SECRET_KEY = re.compile(r"(password|secret|token|private_key|credential)s?$", re.IGNORECASE)


def redact(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-looking keys replaced by ``******``."""
    if isinstance(value, dict):
        return {k: (REDACTED if _SECRET_KEY.search(str(k)) and value[k] not in (None, "")
                    and not isinstance(value[k], dict | list) else redact(value[k]))
                for k in value}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def restore(new: Any, old: Any) -> Any:
    """``new`` with every ``******`` replaced by the value at the same place in ``old``."""
    if isinstance(new, dict):
        old_map = old if isinstance(old, dict) else {}
        return {k: restore(v, old_map.get(k)) for k, v in new.items()}
    if isinstance(new, list):
        old_list = old if isinstance(old, list) else []
        return [restore(v, old_list[i] if i < len(old_list) else None)
                for i, v in enumerate(new)]
    if new == REDACTED and old is not None:
        return old
    return new

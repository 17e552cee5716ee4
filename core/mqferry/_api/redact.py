"""Secrets in API responses and requests.

Responses: secrets are redacted by type (``Secret``) and, as a second guard, by key name.

Requests: a client that reads a config and sends it back unchanged sends ``******``;
:func:`restore` puts the stored value back, as EMQX does, so a round trip never overwrites a
password with stars. Two guards come first: :func:`refuse_references` (a client may send a secret
or ``******``, never a ``file://`` or ``${...}`` reference, which would make the process read a
file or variable of the client's choosing) and :func:`refuse_rebinding` (``******`` is refused when
the hosts or the user change, so the stored password never goes to a host the client picked).

TLS files are the operator's as references are: :func:`refuse_files` lets a client name a new
``cacertfile``, ``certfile`` or ``keyfile`` only inside ``api.ssl_file_dirs``, and keep a stored
client certificate from elsewhere only with the hosts and user it was stored with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from mqferry._api.errors import ApiError, bad_request
from mqferry._config.env import expand
from mqferry._config.secrets import FROM_API, REDACTED, REFERENCE_REFUSED, SECRET_KEY
from mqferry._config.tlsfiles import FILE_FIELDS, IDENTITY_FIELDS, in_dirs
from mqferry._errors import ConfigError

__all__ = ["REDACTED", "redact", "refuse_files", "refuse_rebinding", "refuse_references",
           "restore"]

#: Where a connection goes and as whom: a stored password is only for these values.
#: ``mechanism`` is the SASL mechanism (PLAIN sends the password itself; SCRAM does not).
_BINDING_KEYS = frozenset({"bootstrap_hosts", "server", "servers", "url", "host", "hosts",
                           "port", "username", "user", "mechanism"})
REBINDING_MESSAGE = "send the password again when changing the hosts or the user"


def redact(value: Any) -> Any:
    """A copy of ``value`` with the values of secret-looking keys replaced by ``******``."""
    if isinstance(value, dict):
        return {k: (REDACTED if SECRET_KEY.search(str(k)) and value[k] not in (None, "")
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


def refuse_references(model: type[BaseModel], body: Any, path: str) -> None:
    """Refuse a body from a client that holds a secret reference, naming each field.

    Only the reference check counts here: every other problem of ``body`` is reported by the
    validation of the whole configuration that follows.

    Raises:
        ApiError: 400 naming the fields.
    """
    try:
        model.model_validate(body, context={FROM_API: True})
    except ValidationError as exc:
        fields = sorted({_dotted(path, e["loc"]) for e in exc.errors(include_input=False)
                         if e["type"] == REFERENCE_REFUSED})
        if fields:
            raise bad_request(f"{', '.join(fields)}: a file:// or ${{...}} reference cannot be "
                              "sent through the API: send the secret itself, or ****** to keep "
                              "the stored one", fields=fields) from None


def _dotted(prefix: str, loc: tuple[int | str, ...]) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _picked(value: Any, pick: Callable[[Any, Any], bool], path: str = "") -> dict[str, Any]:
    """The values under ``value`` whose key and value ``pick`` accepts, by their dotted path
    (the walk does not go into a picked value)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            here = f"{path}.{k}" if path else str(k)
            if pick(k, v):
                out[here] = v
            else:
                out.update(_picked(v, pick, here))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(_picked(v, pick, f"{path}[{i}]"))
    return out


def _is_binding(key: Any, value: Any) -> bool:
    if key in _BINDING_KEYS:
        return not isinstance(value, dict)
    # "none" against a mapping: the user changed
    return key == "authentication" and not isinstance(value, dict | list)


def _binding(value: Any) -> dict[str, Any]:
    return _picked(value, _is_binding)


def _keeps_a_secret(new: Any, old: Any) -> bool:
    if isinstance(new, dict):
        old_map = old if isinstance(old, dict) else {}
        return any(_keeps_a_secret(v, old_map.get(k)) for k, v in new.items())
    if isinstance(new, list):
        old_list = old if isinstance(old, list) else []
        return any(_keeps_a_secret(v, old_list[i] if i < len(old_list) else None)
                   for i, v in enumerate(new))
    return new == REDACTED and old is not None


def _expanded(old: Any) -> Any:
    # The stored values as they run: a ${NAME} of the file sent back expanded is no change.
    try:
        return expand(old)
    except ConfigError:
        return old


def _rebound(new: Any, old: Any) -> list[str]:
    """The binding keys (hosts, user) whose values differ between ``old`` and ``new``."""
    before, after = _binding(_expanded(old)), _binding(new)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def refuse_rebinding(new: Any, old: Any) -> None:
    """Refuse ``******`` in ``new`` when its hosts or user differ from the stored ``old``.

    Raises:
        ApiError: 400 naming what changed.
    """
    if old is None or not _keeps_a_secret(new, old):
        return
    changed = _rebound(new, old)
    if changed:
        raise ApiError(400, "BAD_REQUEST", f"{REBINDING_MESSAGE} ({', '.join(changed)} changed)",
                       fields=changed)


def _files(value: Any) -> dict[str, Any]:
    return _picked(value, lambda k, v: k in FILE_FIELDS and isinstance(v, str) and bool(v))


def refuse_files(new: Any, old: Any, dirs: list[str], path: str) -> None:
    """Refuse TLS file paths in ``new`` that the operator did not put there or allow.

    A path is allowed when it is inside one of ``dirs`` (``api.ssl_file_dirs``) or is the
    stored one at the same place. A stored ``certfile`` or ``keyfile`` outside ``dirs`` is the
    operator's client identity for the stored hosts: kept while the hosts or the user change,
    it is refused, as ``******`` is. Nothing is read from the disk before the path is allowed,
    so the answer says nothing about which files exist.

    Raises:
        ApiError: 400 naming the fields.
    """
    sent = _files(new)
    stored = {**_files(old), **_files(_expanded(old))} if old is not None else {}
    stored_raw = _files(old) if old is not None else {}
    foreign = sorted(k for k, v in sent.items()
                     if not in_dirs(v, dirs) and v not in (stored.get(k), stored_raw.get(k)))
    if foreign:
        fields = [f"{path}.{k}" for k in foreign]
        where = (f"inside {', '.join(dirs)} (api.ssl_file_dirs)" if dirs else
                 "inside a directory listed in api.ssl_file_dirs (none is)")
        raise ApiError(400, "BAD_REQUEST", f"{', '.join(fields)}: a TLS file sent through the "
                       f"API must be an absolute path {where}; other files are named in the "
                       "config file", fields=fields)
    kept = sorted(k for k, v in sent.items() if k.rsplit(".", 1)[-1] in IDENTITY_FIELDS
                  and not in_dirs(v, dirs))
    if kept and (changed := _rebound(new, old)):
        fields = [f"{path}.{k}" for k in kept]
        raise ApiError(400, "BAD_REQUEST", f"{', '.join(fields)}: the stored client certificate "
                       f"stays with its hosts and user ({', '.join(changed)} changed): name one "
                       "inside api.ssl_file_dirs, or change the config file", fields=fields)

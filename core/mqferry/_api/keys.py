"""API keys: created by ``mqferry api-key create``, kept hashed in a JSON file, checked per request.

A secret is 32 random bytes, so one salted SHA-256 is enough to keep it from being read back
from the file: the slow hashes that protect low-entropy passwords would only slow every request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mqferry._config.models import ApiConfig

from mqferry._api.roles import ADMINISTRATOR, ROLES

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_KEY_STORE", "ApiKey", "KeyStore", "api_key_store", "key_as_dict",
           "key_store_path", "parse_basic"]

#: The key store's file name when ``api.key_store`` is not set: beside the config file.
DEFAULT_KEY_STORE = "api_keys.json"


def key_store_path(key_store: str | None, data_dir: str,
                   config_dir: str | Path | None = None) -> Path:
    """Where the key store is.

    Args:
        key_store: ``api.key_store`` when the config sets it, else ``None``.
        data_dir: the config's ``data_dir``.
        config_dir: the directory of the config file, when there is one.

    Returns:
        An explicit ``key_store`` as before: as given when absolute, under ``data_dir`` when
        relative. Without one, ``api_keys.json`` in ``config_dir``, so ``mqferry run -c`` and
        ``mqferry api-key create -c`` find the same file from any working directory; without a
        config file, ``api_keys.json`` under ``data_dir``.
    """
    if key_store is None:
        base = Path(config_dir) if config_dir is not None else Path(data_dir)
        return base / DEFAULT_KEY_STORE
    path = Path(key_store)
    return path if path.is_absolute() else Path(data_dir) / path


def api_key_store(api: ApiConfig, data_dir: str, config_path: str | Path | None) -> Path:
    """:func:`key_store_path` of a validated ``api`` section and the config file's path."""
    explicit = api.key_store if "key_store" in api.model_fields_set else None
    config_dir = Path(config_path).absolute().parent if config_path is not None else None
    return key_store_path(explicit, data_dir, config_dir)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One stored key (never its secret)."""

    api_key: str
    name: str
    salt: str
    hash: str
    created_at: int
    enable: bool = True
    desc: str = ""
    #: ``administrator`` or ``viewer`` (read-only); keys made before roles existed are
    #: administrators, as they could do everything then.
    role: str = ADMINISTRATOR

    def matches(self, secret: str) -> bool:
        """Whether ``secret`` is this key's secret (constant time)."""
        return hmac.compare_digest(_hash(self.salt, secret), self.hash)


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


class KeyStore:
    """The key file; re-read when it changes, so new keys work without a restart.

    Args:
        path: the JSON file (created, mode 0600, by :meth:`create`).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, ApiKey] = {}

    def keys(self) -> dict[str, ApiKey]:
        """The stored keys by key id."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._keys = None, {}
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._keys = self._read()
            self._stamp = stamp
        return self._keys

    def _read(self) -> dict[str, ApiKey]:
        try:
            raw = json.loads(self.path.read_text())
            return {k["api_key"]: ApiKey(**k) for k in raw.get("keys", [])}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.error("cannot read the API key store %s: %s", self.path, exc)
            return {}

    def authenticate(self, api_key: str, secret: str) -> ApiKey | None:
        """The stored, enabled key of the pair, or ``None`` when the pair is not one."""
        key, _ = self.check(api_key, secret)
        return key

    def check(self, api_key: str, secret: str) -> tuple[ApiKey | None, str]:
        """The stored, enabled key of the pair; else ``None`` and why, for the 401's message.

        The reason tells an unknown key id from a wrong secret or a disabled key. A key id is
        not a secret (it is listed in the audit log and printed beside every secret), so saying
        that no key has that id tells nothing that helps guess a secret; the secret is never
        described beyond "wrong". See docs/api.md, "Listening and access".
        """
        key = self.keys().get(api_key)
        if key is None:
            return None, f"unknown API key {api_key!r}"
        if not key.matches(secret):
            return None, f"wrong secret for API key {api_key!r}"
        if not key.enable:
            return None, f"API key {api_key!r} is disabled"
        return key, ""

    def verify(self, api_key: str, secret: str) -> bool:
        """Whether the pair is a stored, enabled key and its secret."""
        return self.authenticate(api_key, secret) is not None

    def create(self, name: str, desc: str = "",
               role: str = ADMINISTRATOR) -> tuple[ApiKey, str]:
        """Add a key; returns it and its secret (shown once, never stored).

        Raises:
            ValueError: a key with this name exists, or the role is unknown.
        """
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (known: {', '.join(ROLES)})")
        keys = dict(self.keys())
        if any(k.name == name for k in keys.values()):
            raise ValueError(f"an API key named {name!r} exists")
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        key = ApiKey(api_key=f"mqf_{secrets.token_hex(8)}", name=name, salt=salt,
                     hash=_hash(salt, secret), created_at=int(time.time() * 1000), desc=desc,
                     role=role)
        keys[key.api_key] = key
        self._write(keys)
        return key, secret

    def delete(self, name: str) -> bool:
        """Remove the key named ``name``; whether it existed."""
        keys = {k: v for k, v in self.keys().items() if v.name != name}
        if len(keys) == len(self.keys()):
            return False
        self._write(keys)
        return True

    def _write(self, keys: dict[str, ApiKey], extra: dict[str, Any] | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if extra is None:  # keep what else the file holds (a cluster node's sync state)
            try:
                extra = {k: v for k, v in json.loads(self.path.read_text()).items()
                         if k != "keys"}
            except (OSError, ValueError, AttributeError):
                extra = {}
        data: dict[str, Any] = {"keys": [key_as_dict(k) for k in keys.values()], **extra}
        # A name of its own per write: the CLI (`mqferry api-key create`) and a running cluster
        # node may write the file at once, and one's rename must not take the other's file.
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)
        self._stamp = None


def key_as_dict(key: ApiKey) -> dict[str, Any]:
    """A key as the file (and a cluster's log) stores it."""
    return {"api_key": key.api_key, "name": key.name, "salt": key.salt, "hash": key.hash,
            "created_at": key.created_at, "enable": key.enable, "desc": key.desc,
            "role": key.role}


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """The ``(key, secret)`` of an ``Authorization: Basic`` header, or ``None``."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, sep, secret = decoded.partition(":")
    return (key, secret) if sep else None

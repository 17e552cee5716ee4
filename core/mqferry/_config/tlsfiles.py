"""TLS files named in the configuration: loading them, and which paths the API may name.

A file that cannot be used is reported as one message whatever the reason (missing, a directory,
unreadable, not a certificate, a wrong key password): that message reaches clients of the API
(``status_reason``, probe answers), and telling the reasons apart would let a key holder learn
which files exist on the host. The reason goes to the mqferry log, for the operator.

Paths are the operator's, as secret references are (:mod:`mqferry._config.secrets`): a client of
the API names a new one only inside a directory the operator lists in ``api.ssl_file_dirs``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mqferry._errors import ConfigError

log = logging.getLogger(__name__)

__all__ = ["FILE_FIELDS", "IDENTITY_FIELDS", "in_dirs", "load_tls_files"]

#: The config keys that name TLS files.
FILE_FIELDS = frozenset({"cacertfile", "certfile", "keyfile"})
#: The ones that hold the client's identity: a stored one is bound to its hosts, as a password.
IDENTITY_FIELDS = frozenset({"certfile", "keyfile"})

_IN_LOG = "(the reason is in the mqferry log)"


def _reason(exc: BaseException, password: str | None = None) -> str:
    if isinstance(exc, ssl.SSLError):
        text = str(exc)
        if "KEY_VALUES_MISMATCH" in text:
            return "the key does not belong to the certificate"
        if "bad decrypt" in text or "PEM lib" in text:
            return ("cannot decrypt the key: wrong ssl.password?" if password else
                    "cannot read the key: is it encrypted (set ssl.password)?") + f" ({text})"
        if "NO_CERTIFICATE" in text or "no certificate" in text.lower():
            return f"no PEM certificate in it ({text})"
        return text
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def load_tls_files(ctx: ssl.SSLContext, *, cacertfile: str | None = None,
                   certfile: str | None = None, keyfile: str | None = None,
                   password: str | None = None, field: str = "ssl") -> None:
    """Load the CA certificates and the client certificate and key named into ``ctx``.

    Args:
        ctx: the context to load into.
        cacertfile: PEM file of the CAs to trust, if any.
        certfile: the client certificate (chain), if any.
        keyfile: its key, when not in ``certfile``.
        password: the password of an encrypted key.
        field: the dotted path of the ``ssl`` section, for the problem's path.

    Raises:
        ConfigError: a file cannot be used; the problem names the field and the path, never why
            (that is logged).
    """
    if cacertfile:
        try:
            ctx.load_verify_locations(cafile=cacertfile)
        except (OSError, ValueError, TypeError) as exc:
            log.error("%s.cacertfile: cannot load CA certificates from %s: %s", field,
                      cacertfile, _reason(exc))
            raise ConfigError([(f"{field}.cacertfile", "cannot load CA certificates from "
                                f"{cacertfile} {_IN_LOG}")]) from None
    if certfile:
        secret = password or ""
        # A callable, never None: OpenSSL would otherwise prompt on the terminal for the
        # password of an encrypted key and block the connection attempt.
        callback: Any = lambda: secret  # noqa: E731
        files = f"{certfile} / {keyfile}" if keyfile else certfile
        try:
            ctx.load_cert_chain(certfile, keyfile, callback)
        except (OSError, ValueError, TypeError) as exc:
            log.error("%s.certfile: cannot load the client certificate and key from %s: %s",
                      field, files, _reason(exc, password))
            raise ConfigError([(f"{field}.certfile", "cannot load the client certificate and "
                                f"key from {files} {_IN_LOG}")]) from None


def in_dirs(path: str, dirs: Iterable[str]) -> bool:
    """Whether ``path`` is an absolute path inside one of ``dirs`` (symbolic links resolved)."""
    if "\0" in path or not Path(path).is_absolute():
        return False
    real = Path(path).resolve()
    for d in dirs:
        if "\0" in d or not Path(d).is_absolute():
            continue
        top = Path(d).resolve()
        if real != top and real.is_relative_to(top):
            return True
    return False

"""Secrets: ``${ENV_NAME}`` or ``file://path`` references, resolved at load time, never printed.

References are the operator's: only the config file may hold them. A value that comes from a
client of the API is validated with :data:`FROM_API` in the pydantic context, which refuses a
reference instead of resolving it, so a client cannot make the process read a file or a variable
of its choosing.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, SecretStr, ValidationInfo
from pydantic_core import PydanticCustomError

log = logging.getLogger(__name__)

__all__ = ["FROM_API", "REDACTED", "SECRET_KEY", "Secret", "clear_text_secrets", "is_reference",
           "resolve_secret"]

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$")
REDACTED = "******"
#: The context key that marks a validation of settings sent by a client of the API.
FROM_API = "mqferry.from_api"
#: Keys whose values are secrets, by name: the second guard of redaction, and what makes a config
#: file hold a clear-text secret.
SECRET_KEY = re.compile(r"(password|secret|token|private_key|credential)s?$", re.IGNORECASE)
#: The pydantic error type of a refused reference.
REFERENCE_REFUSED = "secret_reference"


def is_reference(value: Any) -> bool:
    """Whether ``value`` is a ``${ENV}`` or ``file://`` reference rather than a secret."""
    return isinstance(value, str) and (
        bool(_ENV_REF.match(value.strip())) or value.strip().startswith("file://"))


def resolve_secret(value: Any) -> SecretStr:
    """Resolve ``${ENV}`` from the environment and ``file://path`` from a file.

    Raises:
        ValueError: the variable is not set or the file cannot be read; the message names which
            variable, never the value, and never the file or why it cannot be read (that goes to
            the log only: the message may reach a client of the API).
    """
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a string")
    m = _ENV_REF.match(value.strip())
    if m:
        name = m.group(1)
        if name in os.environ:
            return SecretStr(os.environ[name])
        if m.group(2) is not None:
            return SecretStr(m.group(2))
        raise ValueError(f"environment variable {name} is not set")
    if value.strip().startswith("file://"):
        path = Path(value.strip().removeprefix("file://"))
        try:
            return SecretStr(path.read_text().rstrip("\n"))
        except (OSError, UnicodeDecodeError) as exc:
            log.error("cannot read secret file %s: %s", path,
                      getattr(exc, "strerror", None) or exc)
            raise ValueError("cannot read the secret file (the reason is in the mqferry log)"
                             ) from None
    return SecretStr(value)


def _default(value: str) -> str | None:
    m = _ENV_REF.match(value.strip())
    return m.group(2) if m else None


def _validate(value: Any, info: ValidationInfo) -> SecretStr:
    context = info.context
    if isinstance(context, dict) and context.get(FROM_API) and is_reference(value):
        raise PydanticCustomError(
            REFERENCE_REFUSED,
            "a file:// or ${...} reference cannot be sent through the API: send the secret "
            "itself, or ****** to keep the stored one (references belong in the config file)")
    return resolve_secret(value)


#: A password or key: shown as ``******`` in every dump, log and error.
Secret = Annotated[
    SecretStr,
    BeforeValidator(_validate),
    PlainSerializer(lambda _: REDACTED, return_type=str),
]


def clear_text_secrets(data: Any, path: str = "") -> Iterator[str]:
    """The dotted paths of secret-named keys in ``data`` that hold a secret itself.

    An empty value, the ``******`` placeholder or a reference is not a clear-text secret; a
    reference with a default (``${PW:-default}``) is, as the default is written in the file.
    """
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{path}.{key}" if path else str(key)
            if (SECRET_KEY.search(str(key)) and isinstance(value, str) and value
                    and value != REDACTED and (not is_reference(value) or _default(value))):
                yield here
            else:
                yield from clear_text_secrets(value, here)
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from clear_text_secrets(value, f"{path}[{i}]")

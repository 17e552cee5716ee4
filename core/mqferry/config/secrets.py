"""Secrets: ``${ENV_NAME}`` or ``file://path`` references, resolved at load time, never printed."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, SecretStr

_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
REDACTED = "******"


def resolve_secret(value: Any) -> SecretStr:
    """Resolve ``${ENV}`` from the environment and ``file://path`` from a file.

    Raises:
        ValueError: the variable is not set or the file cannot be read; the message names which,
            never the value.
    """
    if isinstance(value, SecretStr):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a string")
    m = _ENV_REF.match(value.strip())
    if m:
        name = m.group(1)
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return SecretStr(os.environ[name])
    if value.startswith("file://"):
        path = Path(value.removeprefix("file://"))
        try:
            return SecretStr(path.read_text().rstrip("\n"))
        except OSError as exc:
            raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from None
    return SecretStr(value)


#: A password or key: shown as ``******`` in every dump, log and error.
Secret = Annotated[
    SecretStr,
    BeforeValidator(resolve_secret),
    PlainSerializer(lambda _: REDACTED, return_type=str),
]

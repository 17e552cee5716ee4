"""Environment variables in the config file: ``${NAME}`` and ``${NAME:-default}`` in any string.

As in EMQX's HOCON, the operator's file may take any value from the environment::

    bootstrap_hosts: "127.0.0.1:${MQFERRY_KAFKA_PORT:-9092}"
    listen: ${MQFERRY_API_LISTEN:-127.0.0.1:18083}

``NAME`` is upper case (``[A-Z_][A-Z0-9_]*``), as environment variables are by convention: a
lower-case or dotted ``${...}`` is a rule template placeholder (``${.clientid}``, ``${payload}``)
and is left alone. ``$${`` is a literal ``${`` (``$${TOPIC}`` stays ``${TOPIC}``). A value made of
one reference only (``port: ${PORT:-1883}``) is a string that the settings convert to their type
like any other. Expansion is one pass: a variable's value is never expanded again.

Only the file is expanded. The running instance keeps the file's text (so a write-back keeps
``${NAME}``), and a client of the API cannot bring a reference in: :func:`keep_references` puts
back the file's text where a client sent its expanded value, and refuses any other reference.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from mqferry._errors import ConfigError

__all__ = ["ENV_REFERENCE", "env_references", "expand", "expand_partly", "expand_string",
           "keep_references"]

#: ``$${`` (a literal ``${``) or ``${NAME}`` / ``${NAME:-default}``; the default runs to the first
#: ``}``.
ENV_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


def expand_string(value: str, environ: Mapping[str, str] | None = None) -> str:
    """``value`` with every reference replaced by its variable's value (or its default).

    Raises:
        KeyError: a variable without a default is not set; its name is the argument.
    """
    if "${" not in value:
        return value
    env = os.environ if environ is None else environ

    def replace(m: re.Match[str]) -> str:
        name = m.group(1)
        if name is None:
            return "${"
        if name in env:
            return env[name]
        if m.group(2) is not None:
            return m.group(2)
        raise KeyError(name)

    return ENV_REFERENCE.sub(replace, value)


def expand(data: Any, path: str = "", environ: Mapping[str, str] | None = None) -> Any:
    """A copy of ``data`` with every string value expanded (keys are not).

    Raises:
        ConfigError: naming each unset variable and where it is used, as
            ``connectors.kafka_producer.k.bootstrap_hosts: environment variable X is not set``.
    """
    problems: list[tuple[str, str]] = []
    out = _expand(data, path, os.environ if environ is None else environ, problems)
    if problems:
        raise ConfigError(problems)
    return out


def expand_partly(data: Any, environ: Mapping[str, str] | None = None
                  ) -> tuple[Any, list[tuple[str, str]]]:
    """A copy of ``data`` expanded as far as it can be, and a problem for each unset variable.

    A value using an unset variable is left as written, so the rest of the file can still be
    validated and every problem reported at once.
    """
    problems: list[tuple[str, str]] = []
    out = _expand(data, "", os.environ if environ is None else environ, problems)
    return out, problems


def _expand(data: Any, path: str, env: Mapping[str, str],
            problems: list[tuple[str, str]]) -> Any:
    if isinstance(data, str):
        try:
            return expand_string(data, env)
        except KeyError as exc:
            problems.append((path, f"environment variable {exc.args[0]} is not set "
                                   f"(set it, or give a default: ${{{exc.args[0]}:-value}})"))
            return data
    if isinstance(data, Mapping):
        return {k: _expand(v, f"{path}.{k}" if path else str(k), env, problems)
                for k, v in data.items()}
    if isinstance(data, list):
        return [_expand(v, f"{path}[{i}]", env, problems) for i, v in enumerate(data)]
    return data


def env_references(data: Any, path: str = "") -> Iterator[str]:
    """The paths of the string values of ``data`` that hold a ``${NAME}`` reference."""
    if isinstance(data, str):
        if any(m.group(1) for m in ENV_REFERENCE.finditer(data)):
            yield path
    elif isinstance(data, Mapping):
        for k, v in data.items():
            yield from env_references(v, f"{path}.{k}" if path else str(k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from env_references(v, f"{path}[{i}]")


def keep_references(new: Any, old: Any, path: str = "") -> Any:
    """``new`` (from a client of the API) with the file's text put back where it was echoed.

    The API shows settings expanded; a client that sends one back unchanged sends the expanded
    value. Where ``old`` (the stored text at the same place) expands to exactly that, the stored
    text is kept, so the file goes on saying ``${NAME}``. Any other reference in ``new`` is
    refused: the client would make the process read a variable of its choosing.

    Raises:
        ConfigError: naming each place that holds a reference the stored text does not.
    """
    problems: list[tuple[str, str]] = []
    out = _keep(new, old, path, problems)
    if problems:
        raise ConfigError(problems)
    return out


def _keep(new: Any, old: Any, path: str, problems: list[tuple[str, str]]) -> Any:
    if new == old:  # the common case, most of a configuration: compared in C, not walked
        return new
    if isinstance(new, Mapping):
        before = old if isinstance(old, Mapping) else {}
        return {k: _keep(v, before.get(k), f"{path}.{k}" if path else str(k), problems)
                for k, v in new.items()}
    if isinstance(new, list):
        prior = old if isinstance(old, list) else []
        return [_keep(v, prior[i] if i < len(prior) else None, f"{path}[{i}]", problems)
                for i, v in enumerate(new)]
    if isinstance(new, str):
        if new == old:
            return new
        if isinstance(old, str) and "${" in old:
            try:
                if expand_string(old) == new:
                    return old
            except KeyError:
                pass
        if any(True for _ in env_references(new)):
            problems.append((path, "a ${NAME} environment reference cannot be sent through the "
                                   "API (references belong in the config file); write $${ for "
                                   "a literal ${"))
    return new

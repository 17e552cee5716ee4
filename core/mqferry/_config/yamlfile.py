"""Reading a YAML config file: a mapping, with ``${NAME}`` references expanded.

Every problem is a :class:`~mqferry.ConfigError` naming the file, and the line and column where
the YAML parser can tell them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mqferry._config.env import expand
from mqferry._config.safeyaml import load_yaml
from mqferry._errors import ConfigError

__all__ = ["parse_yaml", "read_yaml"]


def read_yaml(path: str | Path, *, env: bool | tuple[str, ...] = True) -> dict[str, Any]:
    """Read a YAML file as a mapping.

    Args:
        path: the file.
        env: expand ``${NAME}`` references (see :mod:`mqferry._config.env`); without it, the
            file's text as written (what a write-back must keep); a tuple of top-level keys
            expands only those (a command that reads the ``api`` section must not fail on a
            variable that only the service's environment sets).

    Raises:
        ConfigError: the file is missing, not YAML (or has a key twice in a mapping, or aliases
            that expand beyond reason), not a mapping, or uses a variable that is not set and
            has no default.
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError([("", f"cannot read {p}: {exc.strerror}")]) from None
    return parse_yaml(text, p, env=env)


def parse_yaml(text: str, path: str | Path, *,
               env: bool | tuple[str, ...] = True) -> dict[str, Any]:
    """The mapping of a YAML file's ``text`` (already read from ``path``), as :func:`read_yaml`.

    Raises:
        ConfigError: as :func:`read_yaml`.
    """
    p = Path(path)
    try:
        data = load_yaml(text)
    except ConfigError as exc:
        raise ConfigError([("", f"{p}: {f'{q}: ' if q else ''}{m}") for q, m in exc.problems]
                          ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, col {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([("", f"{p}: {where}invalid YAML: {problem}")]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([("", f"{p}: the top level must be a mapping")])
    if env is True:
        expanded: dict[str, Any] = expand(data)
        return expanded
    if env:
        return {**data, **expand({k: v for k, v in data.items() if k in env})}
    return data

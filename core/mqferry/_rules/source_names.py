"""The two names of a source's events: ``$bridges/<type>:<name>`` and ``$sources/<type>:<name>``.

EMQX accepts both in a rule's FROM (``$bridges/`` from 5.0, ``$sources/`` since sources and
actions were split). The rule engine, the config's checks and the runtime's routing all ask here.
"""

from __future__ import annotations

__all__ = ["PREFIXES", "aliases", "canonical", "source_id"]

#: The canonical prefix first.
PREFIXES = ("$sources/", "$bridges/")


def source_id(name: str) -> str | None:
    """The source id (``<type>:<name>``) an event name refers to, or ``None`` for other names."""
    for prefix in PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return None


def canonical(name: str) -> str:
    """``$sources/<id>`` for either spelling of a source's events; other names unchanged."""
    sid = source_id(name)
    return name if sid is None else PREFIXES[0] + sid


def aliases(name: str) -> tuple[str, ...]:
    """Every name of the event ``name``: itself first, then the other spelling of a source's."""
    sid = source_id(name)
    if sid is None:
        return (name,)
    return (name, *(p + sid for p in PREFIXES if not name.startswith(p)))

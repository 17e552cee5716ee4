"""Reading a config file's YAML: duplicate keys and alias bombs are refused, not obeyed.

The YAML loaders keep the last of two equal keys of a mapping, so a setting written twice is
silently the second one; and a document of a few hundred bytes can, through aliases of aliases
(``b: [*a, *a, ...]``), stand for billions of values that every later walk of the configuration
(expansion, validation, the write-back) would visit. The document's node graph is checked before
it is built into Python values: the graph shares an aliased node, so the check costs one visit
of each node written.
"""

from __future__ import annotations

from typing import Any

import yaml

from mqferry._errors import ConfigError

__all__ = ["MAX_EXPANDED_NODES", "load_yaml"]

#: The most values the document may stand for once its aliases are expanded, beyond the nodes it
#: writes out: far above what a configuration holds through aliases, far below what takes
#: seconds to walk.
MAX_EXPANDED_NODES = 1_000_000

# libyaml's parser reads a large file many times faster than the pure-Python one; both build the
# same plain types.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


def _where(node: yaml.Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, col {mark.column + 1}"


def _key(node: yaml.Node) -> tuple[str, str] | None:
    if isinstance(node, yaml.ScalarNode):
        return node.tag, node.value
    return None


class _Check:
    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        #: id(node) -> the values it stands for once expanded; None while it is being visited
        self.sizes: dict[int, int | None] = {}
        self.written = 0

    def size(self, node: yaml.Node, path: str) -> int:
        """The values ``node`` stands for, checking each mapping written for duplicate keys."""
        known = self.sizes.get(id(node), 0)
        if known is None:
            raise ConfigError([(path, f"{_where(node)}: an alias refers to a node that holds "
                                      "it (a recursive structure)")])
        if known:
            return known
        self.sizes[id(node)] = None
        self.written += 1
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                total += self.size(item, f"{path}[{i}]")
        elif isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], yaml.Node] = {}
            for key_node, value in node.value:
                key = _key(key_node)
                name = str(key[1]) if key else "?"
                here = f"{path}.{name}" if path else name
                if key is not None and key_node.tag != _MERGE:
                    if key in seen:
                        self.problems.append((here, f"{_where(key_node)}: duplicate key "
                                             f"{name!r} (first at {_where(seen[key])}); "
                                             "YAML would keep only the last"))
                    else:
                        seen[key] = key_node
                total += self.size(key_node, here) + self.size(value, here)
        if total - self.written > MAX_EXPANDED_NODES:
            raise ConfigError([(path, f"{_where(node)}: the aliases expand to more than "
                                      f"{MAX_EXPANDED_NODES:,} values (an alias bomb?)")])
        self.sizes[id(node)] = total
        return total


def load_yaml(text: str) -> Any:
    """The plain values of a YAML document, as a safe loader builds them.

    Raises:
        yaml.YAMLError: the text is not YAML.
        ConfigError: a mapping has a key twice (every such key, with its line), or the aliases
            expand to more than :data:`MAX_EXPANDED_NODES` values or into themselves.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check = _Check()
        try:
            check.size(node, "")
        except RecursionError:
            raise ConfigError([("", "the document is nested too deeply")]) from None
        if check.problems:
            raise ConfigError(check.problems)
        return loader.construct_document(node)
    finally:
        loader.dispose()

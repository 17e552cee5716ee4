"""The operator's config file as text pieces, so a write-back changes only what changed.

A file is cut into its top-level keys and, in the sections that hold named entries (``rules``,
``connectors``, ...), into those entries: each piece keeps its text (comments, quoting, block SQL,
``${NAME}`` references) and the value it holds. Rendering a new mapping reuses the text of every
piece whose value did not change; a changed piece is edited in place by ruamel.yaml's round trip
(only the changed nodes are written again, its comments stay); a new one is written fresh, with
multi-line strings as block scalars (``sql: |``). Comment lines right above a key go with it.

Cutting uses PyYAML's C parser (fast on a file of 10,000 rules); ruamel.yaml, many times slower,
only ever sees the pieces that changed.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

log = logging.getLogger(__name__)

__all__ = ["Layout", "fresh_text"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_COMMENT = re.compile(r"^\s*#")


class _BlockDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """PyYAML's dumper with multi-line strings as block scalars (``|``) where YAML allows it."""


def _represent_str(dumper: Any, data: str) -> Any:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_BlockDumper.add_representer(str, _represent_str)


def fresh_text(data: Any) -> str:
    """``data`` as block YAML, multi-line strings as block scalars (nothing to keep)."""
    text: str = yaml.dump(_plain(data), Dumper=_BlockDumper, sort_keys=False,
                          allow_unicode=True, default_flow_style=False)
    return _no_document_end(text)


def _no_document_end(text: str) -> str:
    # After a block scalar that keeps its trailing newlines (``|+``) the YAML writers end the
    # document with ``...``; spliced among the other entries, that marker would end the whole
    # file there. What follows it in the file ends the scalar just as well.
    return text.removesuffix("...\n") if text.endswith("\n...\n") else text


@dataclass(slots=True)
class _Piece:
    text: str
    value: Any


@dataclass(slots=True)
class _Section:
    """A top-level key: its whole text, or its header and its entries' pieces."""

    piece: _Piece
    header: str | None = None
    entries: dict[str, _Piece] = field(default_factory=dict)
    indent: int = 2


@dataclass(slots=True)
class Layout:
    """A config file cut into pieces; :meth:`render` gives the text of a new mapping."""

    prefix: str = ""
    sections: dict[str, _Section] = field(default_factory=dict)
    #: mapping indent and sequence style of the file, for what ruamel.yaml writes
    indents: tuple[int, int, int] = (2, 4, 2)

    @classmethod
    def parse(cls, text: str) -> Layout | None:
        """Cut ``text``; ``None`` when its shape is not one this can keep (flow style at the top,
        keys that are not strings, a top level that is not a mapping)."""
        loader = _Loader(text)
        try:
            # One parse for both: the nodes (where each key starts) and the values.
            root = loader.get_single_node()
            values = loader.construct_document(root) if root is not None else None
        except yaml.YAMLError:
            return None
        finally:
            loader.dispose()
        if root is None:
            return cls(prefix=text)
        if (not isinstance(root, yaml.MappingNode) or root.flow_style
                or not isinstance(values, dict) or not all(isinstance(k, str) for k in values)
                or len(values) != len(root.value)):
            return None
        lines = text.splitlines(keepends=True)
        starts = [_start(lines, k.start_mark.line) for k, _ in root.value]
        layout = cls(prefix="".join(lines[:starts[0]]), indents=_indents(text))
        for i, (key_node, value_node) in enumerate(root.value):
            end = starts[i + 1] if i + 1 < len(starts) else len(lines)
            name = key_node.value
            section = _Section(_Piece("".join(lines[starts[i]:end]), values[name]))
            if (isinstance(value_node, yaml.MappingNode) and not value_node.flow_style
                    and value_node.value and isinstance(values[name], dict)
                    and all(isinstance(k, str) for k in values[name])
                    and len(values[name]) == len(value_node.value)):
                first = [_start(lines, k.start_mark.line) for k, _ in value_node.value]
                if first[0] > starts[i]:
                    section.header = "".join(lines[starts[i]:first[0]])
                    section.indent = value_node.value[0][0].start_mark.column
                    for j, (k, _) in enumerate(value_node.value):
                        stop = first[j + 1] if j + 1 < len(first) else end
                        section.entries[k.value] = _Piece("".join(lines[first[j]:stop]),
                                                          values[name][k.value])
            layout.sections[name] = section
        return layout

    def render(self, data: Mapping[str, Any]) -> tuple[str, Layout]:
        """The text of ``data`` and the layout of that text."""
        out = Layout(prefix=self.prefix, indents=self.indents)
        for name, value in data.items():
            key = str(name)
            old = self.sections.get(key)
            if old is None:
                section = _Section(_Piece(self._fresh_top(key, value), value))
            elif old.piece.value is value or old.piece.value == value:
                section = old
            elif old.header is not None and isinstance(value, Mapping) and value:
                section = self._render_entries(key, old, value)
            else:
                section = _Section(_Piece(self._edit(key, None, old.piece.text, value, 0), value))
            out.sections[key] = section
        return "".join(_lines([out.prefix, *(s.piece.text for s in out.sections.values())])), out

    def _render_entries(self, key: str, old: _Section, value: Mapping[str, Any]) -> _Section:
        assert old.header is not None
        section = _Section(_Piece("", value), old.header, {}, old.indent)
        for name, body in value.items():
            entry = str(name)
            before = old.entries.get(entry)
            if before is not None and (before.value is body or before.value == body):
                section.entries[entry] = before
            elif before is not None:
                section.entries[entry] = _Piece(
                    self._edit(key, entry, before.text, body, old.indent), body)
            else:
                section.entries[entry] = _Piece(
                    self._edit(key, entry, None, body, old.indent), body)
        section.piece.text = "".join(_lines([old.header, *(
            e.text for e in section.entries.values())]))
        return section

    def _fresh_top(self, key: str, value: Any) -> str:
        return self._edit(key, None, None, value, 0)

    def _edit(self, key: str, entry: str | None, text: str | None, value: Any,
              indent: int) -> str:
        """The text of ``key`` (or its ``entry``) holding ``value``, edited from ``text``."""
        wrapped = {key: {entry: value}} if entry is not None else {key: value}
        # The blank lines that end a piece separate it from the next: ruamel.yaml would keep them
        # with the last node, where a new key would follow them.
        gap = ""
        if text is not None:
            body = text.rstrip("\n") + "\n"
            gap, text = text[len(body):], body
        try:
            rendered = self._round_trip(key, entry, text, value, indent)
        except Exception:  # any failure of the round trip falls back to a fresh rendering
            log.debug("cannot edit %s in place; writing it afresh", key, exc_info=True)
            rendered = None
        if rendered is not None and _reads_as(rendered, key, entry, wrapped):
            return rendered + gap
        # A value the round trip cannot keep: write it fresh, at the entries' column.
        fresh = fresh_text(wrapped)
        if entry is None:
            return fresh + gap
        pad = " " * max(0, indent - 2)
        return "".join(pad + line if line.strip() else line
                       for line in fresh.split("\n", 1)[1].splitlines(keepends=True)) + gap

    def _round_trip(self, key: str, entry: str | None, text: str | None, value: Any,
                    indent: int) -> str:
        yml = YAML()
        yml.preserve_quotes = True
        yml.width = 4096  # never fold a long string over lines
        mapping, sequence, offset = self.indents
        yml.indent(mapping=indent or mapping, sequence=sequence, offset=offset)
        if text is None:
            doc: Any = CommentedMap()
            doc[key] = CommentedMap({entry: _fresh(value)}) if entry is not None else _fresh(value)
        else:
            doc = yml.load(f"{key}:\n{text}" if entry is not None else text)
            parent = doc[key] if entry is not None else doc
            slot = entry if entry is not None else key
            parent[slot] = _merge(parent[slot], value)
        buf = io.StringIO()
        yml.dump(doc, buf)
        rendered = _no_document_end(buf.getvalue())
        return rendered.split("\n", 1)[1] if entry is not None else rendered


def _reads_as(text: str, key: str, entry: str | None, expected: Any) -> bool:
    whole = f"{key}:\n{text}" if entry is not None else text
    try:
        return bool(yaml.load(whole, Loader=_Loader) == _plain(expected))  # noqa: S506
    except yaml.YAMLError:
        return False


def _merge(node: Any, new: Any) -> Any:
    """``node`` (ruamel.yaml's) changed in place to hold ``new``; only what differs is replaced."""
    if isinstance(node, CommentedMap) and isinstance(new, Mapping):
        for k in [k for k in node if k not in new]:
            del node[k]
        for i, (k, v) in enumerate(new.items()):
            if k in node:
                merged = _merge(node[k], v)
                if merged is not node[k]:
                    node[k] = merged
            else:
                node.insert(i, k, _fresh(v))
        return node
    if isinstance(node, CommentedSeq) and isinstance(new, list | tuple):
        for i, v in enumerate(new):
            if i < len(node):
                merged = _merge(node[i], v)
                if merged is not node[i]:
                    node[i] = merged
            else:
                node.append(_fresh(v))
        del node[len(new):]
        return node
    if (not isinstance(node, Mapping | list) and node == new
            and isinstance(node, bool) == isinstance(new, bool)
            and isinstance(node, float) == isinstance(new, float)):
        return node  # the same scalar: its quoting and style stay
    return _fresh(new)


def _fresh(value: Any) -> Any:
    if isinstance(value, Mapping):
        return CommentedMap((str(k), _fresh(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return CommentedSeq(_fresh(v) for v in value)
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value


def _plain(value: Any) -> Any:
    # safe_dump refuses subclasses and tuples; hand it plain dicts and lists.
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _start(lines: list[str], line: int) -> int:
    # The comment lines right above a key belong to it (they say what it is).
    while line > 0 and _COMMENT.match(lines[line - 1]):
        line -= 1
    return line


def _lines(parts: list[str]) -> list[str]:
    # Every piece ends its last line, so the next starts on its own.
    return [p if not p or p.endswith("\n") else p + "\n" for p in parts]


def _indents(text: str) -> tuple[int, int, int]:
    # ``key:\n- item`` (the sequence at its key's column) or ``key:\n  - item``.
    m = re.search(r"^( *)[^\s#-][^\n]*:\n( *)- ", text, re.MULTILINE)
    if m and len(m.group(2)) == len(m.group(1)):
        return (2, 2, 0)
    return (2, 4, 2)

"""No code in core or plugins reaches into paho's private attributes or modules, or uses aiomqtt.

mqferry once replaced paho's read and write loops through a dozen of its private attributes;
paho 2.1 renamed one of them and keepalive silently stopped seeing incoming data. The MQTT
connection is ours now (:mod:`mqferry._mqtt.protocol`); this walk keeps it that way. aiomqtt,
once the MQTT client and then only the source of ``MqttError``, is no dependency any more:
:class:`mqferry.MqttUnavailable` took its place.
"""

from __future__ import annotations

import ast
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[2]
LIBRARIES = ("paho", "aiomqtt")


def private_names() -> set[str]:
    """The private attribute names of paho's client (and ones older paho and aiomqtt had)."""
    objects: list[object] = [paho.Client, paho.Client(CallbackAPIVersion.VERSION2),
                             paho.MQTTMessage]
    names = {"_last_bytes_received", "_client"}
    for obj in objects:
        names.update(dir(obj))
        names.update(getattr(obj, "__dict__", {}))
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def violations(tree: ast.AST, private: set[str]) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in private:
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in {"self", "cls"}):
                found.append((node.lineno, f"{ast.unparse(node)}"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in LIBRARIES:
            parts = (node.module or "").split(".") + [a.name for a in node.names]
            if any(p.startswith("_") for p in parts):
                found.append((node.lineno, f"from {node.module} import ..."))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in LIBRARIES and any(p.startswith("_") for p in parts):
                    found.append((node.lineno, f"import {alias.name}"))
    return found


def test_the_walk_sees_private_access():
    code = ("import paho.mqtt._packet\nfrom paho.mqtt.client import _ConnectionState\n"
            "c._client._packet_queue(0)\nself._sock = None\n")
    assert [line for line, _ in violations(ast.parse(code), private_names())] == [1, 2, 3, 3]


def test_core_and_plugins_use_paho_and_aiomqtt_through_public_names_only():
    private = private_names()
    assert {"_sock", "_in_packet", "_packet_queue", "_mid_generate", "_client"} <= private
    found = []
    for path in sorted([*ROOT.glob("core/**/*.py"), *ROOT.glob("plugins/**/*.py")]):
        tree = ast.parse(path.read_text(), str(path))
        found += [f"{path.relative_to(ROOT)}:{line}: {what}"
                  for line, what in violations(tree, private)]
    assert found == [], "private attributes of paho/aiomqtt used:\n" + "\n".join(found)


def test_core_and_plugins_do_not_import_aiomqtt():
    found = []
    for path in sorted([*ROOT.glob("core/**/*.py"), *ROOT.glob("plugins/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}:{node.lineno}" for n in names
                      if n.split(".")[0] == "aiomqtt"]
    assert found == [], "aiomqtt is not a dependency of mqferry:\n" + "\n".join(found)

"""The plugin contract: what plugins may import from mqferry, and what the core may not import.

Plugins, built-in or third-party, live on the public surface only: the names in
``mqferry.__all__`` and the test harness ``mqferry.testing``; a plugin reaches another plugin's
package only through that package's ``__all__``. The core imports no Kafka client and no
benchmark-only library, so a host without them still runs.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest

import mqferry

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIRS = [*sorted((ROOT / "plugins").glob("*/mqferry_*")),
               ROOT / "examples" / "plugin" / "mqferry_example",
               ROOT / "tests" / "thirdparty_plugin" / "mqferry_sample_plugin"]
PUBLIC_MODULES = {"mqferry.testing"}
#: Imports outside the public surface, each with its reason. The bench's MQTT verifier runs the
#: product's own MQTT connection, so that a run measures the bridge with the same codec on both
#: sides, and its load generator frames its packets with the product's codec; the bench is the one
#: plugin that reaches into the core's MQTT modules, and only for that.
PENDING = {("mqferry_bench/mqtt_load.py", "mqferry._mqtt.codec"),
           ("mqferry_bench/mqtt_verify.py", "mqferry._config.models"),
           ("mqferry_bench/mqtt_verify.py", "mqferry._mqtt.codec"),
           ("mqferry_bench/mqtt_verify.py", "mqferry._mqtt.connect"),
           ("mqferry_bench/mqtt_verify.py", "mqferry._mqtt.protocol")}
#: Libraries the core must never import (the Kafka plugins and the bench plugin bring them).
NOT_IN_CORE = ("aiokafka", "confluent_kafka", "kafka", "rich", "psutil")


def _imports(tree: ast.AST) -> list[tuple[int, str, list[str]]]:
    """``(line, module, names)`` of every import, top-level or inside a function."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name, []) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module, [a.name for a in node.names]))
    return out


def non_public_imports(source: str, own_package: str, where: str = "<src>") -> list[str]:
    """Every import in ``source`` of a mqferry name that is not public, or of another plugin's
    internals, as ``where:line: what``."""
    packages = {p.name for p in PLUGIN_DIRS}
    problems = []
    for line, module, names in _imports(ast.parse(source)):
        top = module.split(".")[0]
        if top == "mqferry":
            if module == "mqferry":
                bad = [n for n in names if n not in mqferry.__all__]
                if bad or not names:
                    problems.append(f"{where}:{line}: mqferry.{', mqferry.'.join(bad) or '*'}")
            elif not any(module == m or module.startswith(m + ".") for m in PUBLIC_MODULES):
                problems.append(f"{where}:{line}: {module}")
        elif top in packages and top != own_package:
            exported = importlib.import_module(top).__all__
            if module != top or any(n not in exported for n in names):
                problems.append(f"{where}:{line}: {module} {names} (another plugin's internals)")
    return problems


def test_the_checker_catches_private_imports():
    src = textwrap.dedent("""
        from mqferry import ActionType, hookimpl
        from mqferry._templates import Template
        import mqferry._metrics
        from mqferry import _version
        from mqferry.testing import RecordingDelivery
        from mqferry_kafka.config import client_options
        def lazy():
            from mqferry._config.models import Strict
    """)
    assert non_public_imports(src, "mqferry_sample_plugin") == [
        "<src>:3: mqferry._templates",
        "<src>:4: mqferry._metrics",
        "<src>:5: mqferry._version",
        "<src>:7: mqferry_kafka.config ['client_options'] (another plugin's internals)",
        "<src>:9: mqferry._config.models",
    ]


def test_plugins_import_only_public_names():
    assert len(PLUGIN_DIRS) >= 7, PLUGIN_DIRS  # the walk found the plugins
    problems = []
    for pkg in PLUGIN_DIRS:
        for path in sorted(pkg.rglob("*.py")):
            rel = path.relative_to(pkg.parent).as_posix()
            found = non_public_imports(path.read_text(), pkg.name, rel)
            problems += [p for p in found
                         if not any(p.startswith(f"{f}:") and p.endswith(m) for f, m in PENDING)]
    assert problems == []


def test_the_pending_exceptions_are_still_needed():
    for file, module in PENDING:
        path = ROOT / "plugins" / "bench" / file
        assert f"from {module} import" in path.read_text(), f"drop {file} from PENDING"


def _source_docstring(obj: object) -> str:
    """The docstring in the source of a class or function defined at its module's top level: a
    class compiled by scripts/compile.py may carry none at run time."""
    module = sys.modules[obj.__module__]
    path = Path(module.__file__)
    tree = ast.parse(path.with_name(path.name.split(".")[0] + ".py").read_text())
    for node in tree.body:
        if getattr(node, "name", None) == obj.__name__:
            return ast.get_docstring(node) or ""
    return ""


def test_every_public_name_is_importable_and_documented():
    for name in mqferry.__all__:
        obj = getattr(mqferry, name)
        obj = typing.get_origin(obj) or obj  # ActionRegister = Register[ActionType]
        if isinstance(obj, type) or callable(obj):
            doc = getattr(obj, "__doc__", None) or _source_docstring(obj)
            assert doc.strip(), f"mqferry.{name} has no docstring"


def test_the_core_imports_no_kafka_client_nor_bench_library_statically():
    problems = []
    for path in sorted((ROOT / "core" / "mqferry").rglob("*.py")):
        for line, module, _ in _imports(ast.parse(path.read_text())):
            if module.split(".")[0] in (*NOT_IN_CORE, "mqferry_kafka", "mqferry_bench"):
                problems.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert problems == []


_BLOCKED_IMPORT = """
import importlib, importlib.abc, json, pkgutil, sys

BLOCKED = set(sys.argv[1].split(","))

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
        return None

sys.meta_path.insert(0, Block())
import pytest

import mqferry
failed = {}
names = [m.name for m in pkgutil.walk_packages(mqferry.__path__, "mqferry.")]
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"modules": len(names), "failed": failed,
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)}))
"""


def _import_all_core_modules(blocked: tuple[str, ...]) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _BLOCKED_IMPORT, ",".join(blocked)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_every_core_module_imports_without_kafka_client_or_bench_libraries():
    result = _import_all_core_modules((*NOT_IN_CORE, "mqferry_kafka", "mqferry_bench"))
    assert result["modules"] > 50  # the walk saw the whole package
    assert result["failed"] == {}
    assert result["loaded"] == []


def test_the_blocking_works():
    # the same walk, blocking a library the management API needs, reports its modules
    result = _import_all_core_modules(("fastapi",))
    assert "mqferry._api" in result["failed"]


def test_every_error_mqferry_defines_is_in_the_one_tree():
    from mqferry import MqttUnavailable
    from mqferry._api.errors import ApiError
    from mqferry._errors import MqferryError
    from mqferry._rules.functions._args import BadArg
    from mqferry._runtime.reconfig import ConfigConflictError
    from mqferry_kafka_consumer.message import RecordDecodeError
    from mqferry_kafka_producer.partitions import KafkaUnreachable

    for error in (ApiError, BadArg, ConfigConflictError, RecordDecodeError, KafkaUnreachable,
                  MqttUnavailable):
        assert issubclass(error, MqferryError), error
    # the ones that are also a built-in error keep being caught as one
    assert issubclass(BadArg, TypeError) and issubclass(RecordDecodeError, ValueError)


def test_errors_carry_the_component_they_are_about():
    from mqferry import DeliveryError, DuplicateTypeError, MqferryError

    assert MqferryError("x").component is None
    err = DeliveryError("failed.too_large", "record of 2 MiB", component="kafka_producer:sink")
    assert (err.component, str(err)) == ("kafka_producer:sink", "failed.too_large: record of 2 MiB")
    assert DuplicateTypeError("action", "s", "a", "b").component == "b"


def test_mqtt_unavailable_names_the_connector_and_the_session():
    from mqferry import MqferryError, MqttUnavailable
    from mqferry._config import MqttConfig
    from mqferry._mqtt.client import MqttConnector

    err = MqttUnavailable("Operation timed out", session="broker:1883 as me")
    assert isinstance(err, MqferryError) and not isinstance(err, OSError)
    assert (err.component, err.session, err.reason) == ("mqtt", "broker:1883 as me",
                                                         "Operation timed out")
    # the real connector raises it, naming its own session, when the session is not up
    connector = MqttConnector(config=MqttConfig(server="broker.invalid:1883", clientid="cid"))
    with pytest.raises(MqttUnavailable) as raised:
        connector.publish_nowait("t", b"x", qos=1)
    assert raised.value.session == "broker.invalid:1883 as cid"

"""``mqferry run`` does not load the REST API's client (FastAPI, uvicorn, httpx) it never uses.

Each import costs resident memory for the bridge's whole life (about 16 MiB together, see
benchmarks/RESULTS.md, "Peak RSS"); the API server itself is imported only when enabled.
"""

import subprocess
import sys

_CHECK = """
import sys
sys.argv = ["mqferry", "run", "--help"]
from mqferry._cli import main
try:
    main()
except SystemExit:
    pass
heavy = ("fastapi", "uvicorn", "httpx", "starlette")
print("loaded:" + ",".join(m for m in heavy if m in sys.modules))
"""


def _loaded_by(code: str) -> str:
    """What ``code`` prints after ``loaded:``, run in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    [line] = [x for x in out.stdout.splitlines() if x.startswith("loaded:")]
    return line.removeprefix("loaded:")


def _loaded(argv_command: str) -> str:
    return _loaded_by(_CHECK.replace('"run"', repr(argv_command)))


def test_run_leaves_the_api_client_unloaded():
    assert _loaded("run") == ""


def test_other_commands_still_have_the_api_client():
    assert "fastapi" in _loaded("rules")


def test_the_rule_functions_leave_jq_and_multiprocessing_to_a_jq_call():
    # Only a jq call needs them (the worker process runs the program): a bridge without jq
    # rules does not carry them.
    code = ("import sys\nimport mqferry._rules.functions\n"
            "print('loaded:' + ','.join(m for m in ('jq', 'multiprocessing') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert "loaded:" in out.stdout and out.stdout.strip().endswith("loaded:"), out.stdout


_BRIDGE = """
import sys, pathlib, tempfile
cfg = pathlib.Path(tempfile.mkdtemp()) / "c.yaml"
cfg.write_text('''
mqtt: {server: "127.0.0.1:1", clientid: c}
api: {enable: false}
connectors: {kafka_producer: {k: {bootstrap_hosts: "127.0.0.1:1"}}}
actions: {kafka_producer: {s: {connector: k, parameters: {topic: t}}}}
rules:
  r:
    actions: ["kafka_producer:s"]
    sql: |
      SELECT payload.x as x, upper(topic) as t FROM "a/#" WHERE x > 1
''')
from mqferry._config.loader import load_config
from mqferry._plugins import load_plugins
from mqferry._runtime import App
from mqferry._runtime.reconfig import Controller
plugins = load_plugins()
config = load_config(cfg, plugins.registries(), plugins.function_table())
app = App(config)
Controller(app, plugins, path=cfg)
print("loaded:" + ",".join(m for m in MODULES if m in sys.modules))
"""


def _bridge_loads(*modules: str) -> str:
    return _loaded_by(_BRIDGE.replace("MODULES", repr(modules)))


def test_a_bridge_without_regex_rules_or_config_writes_leaves_their_libraries_unloaded():
    # RE2 (the regex_* functions) and ruamel.yaml (the config file's write-back): about 5 MiB
    # a bridge carries only if it uses them.
    assert _bridge_loads("re2", "ruamel.yaml") == ""


def test_a_regex_rule_loads_its_engine_when_it_is_compiled():
    # a literal pattern is compiled with the rule, so that an invalid one refuses the rule
    code = ("import sys\nfrom mqferry._rules import compile_sql\n"
            "rule = compile_sql(\"SELECT regex_match(topic, '^a/[0-9]+$') as m FROM 'a/#'\")\n"
            "before = 're2' in sys.modules\n"
            "out = rule.apply({'topic': 'a/12', 'payload': ''})\n"
            "print('result:', before, 're2' in sys.modules, out)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert "result: True True {'m': True}" in out.stdout, out.stdout + out.stderr

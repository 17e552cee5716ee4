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


def _loaded(argv_command: str) -> str:
    code = _CHECK.replace('"run"', repr(argv_command))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    [line] = [x for x in out.stdout.splitlines() if x.startswith("loaded:")]
    return line.removeprefix("loaded:")


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

"""Compile the data path's modules to C extensions with mypyc, in place, beside their sources.

    python scripts/compile.py           # compile (again): every listed module
    python scripts/compile.py --clean   # remove the compiled modules: the sources run again
    python scripts/compile.py --list    # which modules are compiled, and whether they are fresh
    python scripts/compile.py --if-needed  # compile only when a module is not, or is stale

Each (but ``--list``) also saves the rule parser beside its grammar
(``core/mqferry/_rules/grammar.lark.saved``), loaded at start-up instead of built from the
grammar; ``--clean`` removes it.

A compiled module is the same source, type-checked and translated to C: a message crosses the
bridge with about a third less CPU (benchmarks/RESULTS.md). Python imports the extension
(``codec.cpython-311-x86_64-linux-gnu.so``) in preference to the source beside it, so an edited
source would silently not run; ``mqferry`` refuses to import a compiled module older than its
source (:mod:`mqferry._compiled`) and names this script. ``scripts/bootstrap.sh`` runs it.

Needs a C compiler and the Python headers; where they are missing it says so and changes
nothing, and mqferry runs from its sources.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Per source root, the modules on the path of every message (decode, acks, rules, records).
#: Modules whose classes tests or plugins subclass or replace by duck-typed twins stay
#: interpreted, as does anything that is not per message.
MODULES: dict[str, list[str]] = {
    "core": [
        "mqferry/_mqtt/codec.py",
        "mqferry/_mqtt/strings.py",
        "mqferry/_mqtt/acks.py",
        "mqferry/_mqtt/protocol.py",
        "mqferry/_mqtt/outbox.py",
        "mqferry/_mqtt/client.py",
        "mqferry/_runtime/delivery.py",
        "mqferry/_runtime/events.py",
        "mqferry/_runtime/rules.py",
        "mqferry/_rules/event.py",
        "mqferry/_templates.py",
        "mqferry/_metrics/__init__.py",
    ],
    "plugins/kafka_producer": [
        "mqferry_kafka_producer/partitions.py",
        "mqferry_kafka_producer/record.py",
        "mqferry_kafka_producer/records.py",
        "mqferry_kafka_producer/render.py",
        "mqferry_kafka_producer/action.py",
        "mqferry_kafka_producer/flush.py",
        "mqferry_kafka_producer/sender.py",
    ],
    "plugins/kafka_consumer": [
        "mqferry_kafka_consumer/handler.py",
        "mqferry_kafka_consumer/message.py",
    ],
}

#: what mypy needs to see besides the modules compiled (their imports)
MYPY_PATH = ["core", "plugins/kafka_common", "plugins/kafka_producer", "plugins/kafka_consumer",
             "plugins/republish"]

_BUILD = """
import sys
from setuptools import setup
from mypyc.build import mypycify
setup(name="mqferry-compiled", ext_modules=mypycify(sys.argv[3:], opt_level="3",
      target_dir=sys.argv[2]), script_args=["build_ext", "--inplace", "--build-temp",
      sys.argv[1] + "/temp", "--build-lib", sys.argv[1] + "/lib"])
"""


def compiled_files(root: Path) -> list[Path]:
    """The extension modules under ``root`` (a source root): per module and shared."""
    return sorted(p for p in root.rglob("*.so")
                  if ".cpython-" in p.name and not {"build", "node_modules"} & set(p.parts))


def clean() -> int:
    """Remove every compiled module of the listed roots."""
    removed = 0
    for rel in MODULES:
        for so in compiled_files(ROOT / rel):
            so.unlink()
            removed += 1
    print(f"compile: removed {removed} compiled modules; the sources run")
    return 0


def show() -> int:
    """List the compiled modules and whether each is newer than its source."""
    for rel in MODULES:
        for so in compiled_files(ROOT / rel):
            src = so.with_name(so.name.split(".", 1)[0] + ".py")
            if not src.exists():
                state = "shared runtime"
            elif src.stat().st_mtime > so.stat().st_mtime:
                state = "STALE: the source changed after it was compiled"
            else:
                state = "fresh"
            print(f"{so.relative_to(ROOT)}: {state}")
    return 0


def needed() -> bool:
    """Whether a listed module has no compiled module, or one older than its source."""
    for rel, modules in MODULES.items():
        for module in modules:
            src = ROOT / rel / module
            built = list(src.parent.glob(src.stem + ".cpython-*.so"))
            if not built or any(src.stat().st_mtime > so.stat().st_mtime for so in built):
                return True
    return False


def build() -> int:
    """Compile every listed module; on failure, leave the sources to run."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        print("compile: no C compiler (cc or gcc): mqferry runs from its sources",
              file=sys.stderr)
        return 1
    clean()
    env = {**os.environ, "MYPYPATH": os.pathsep.join(str(ROOT / p) for p in MYPY_PATH)}
    for rel, modules in MODULES.items():
        with tempfile.TemporaryDirectory(prefix="mqferry-mypyc-") as tmp:
            cmd = [sys.executable, "-c", _BUILD, tmp, f"{tmp}/c", *modules]
            print(f"compile: {rel}: {len(modules)} modules", flush=True)
            done = subprocess.run(cmd, cwd=ROOT / rel, env=env, capture_output=True, text=True,
                                  check=False)
            if done.returncode != 0:
                sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
                print(f"compile: {rel} failed (above); removing what was compiled",
                      file=sys.stderr)
                clean()
                return 1
    return show()


#: Saves the rule parser beside its grammar (mqferry._rules.parser.save_parser): loading it
#: keeps ~1 MiB less resident than building the parse tables at start-up. It runs the sources,
#: so it needs no compiler.
_SAVE_PARSER = """
from mqferry._rules.parser import save_parser
path = save_parser()
print(f"compile: rule parser saved to {path}" if path else "compile: rule parser not saved")
"""


def parser_cache() -> Path:
    """The saved rule parser (see :func:`save_parser`)."""
    return ROOT / "core" / "mqferry" / "_rules" / "grammar.lark.saved"


def save_parser() -> None:
    """Save the rule parser from this checkout's sources; a failure is a warning (the parser
    is then built at start-up)."""
    path = [str(ROOT / "core"), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    done = subprocess.run([sys.executable, "-c", _SAVE_PARSER], env=env, capture_output=True,
                          text=True, check=False)
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        print("compile: the rule parser was not saved (above): it is built at start-up",
              file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    parser.add_argument("--list", action="store_true", help="list the compiled modules")
    parser.add_argument("--if-needed", action="store_true",
                        help="compile only when a module is not compiled, or is stale")
    args = parser.parse_args()
    if args.clean:
        parser_cache().unlink(missing_ok=True)
        return clean()
    if args.list:
        return show()
    if args.if_needed and not needed():
        print("compile: every listed module is compiled and fresh")
        save_parser()
        return 0
    built = build()
    save_parser()
    return built


if __name__ == "__main__":
    sys.exit(main())

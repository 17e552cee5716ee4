"""A compiled module must not be older than its source.

``scripts/compile.py`` compiles the data path's modules with mypyc, in place: Python then
imports ``codec.cpython-311-x86_64-linux-gnu.so`` rather than ``codec.py`` beside it. A source
edited (or updated by ``git pull``) after that would silently not run, so each package that may
hold compiled modules checks them before importing any; the core's are checked when this
module is imported, which ``mqferry`` does first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["StaleCompiledModule", "check_compiled"]


class StaleCompiledModule(ImportError):
    """A compiled module is older than its source."""


def check_compiled(package_path: Iterable[str]) -> None:
    """Refuse to go on when a compiled module under ``package_path`` is older than its source.

    For a plugin whose modules may be compiled: call it in the package's ``__init__`` with its
    ``__path__``, before importing them.

    Raises:
        StaleCompiledModule: naming the source and what to run.
    """
    for top in package_path:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "__pycache__"))]
            for name in filenames:
                if not name.endswith(".so") or ".cpython-" not in name:
                    continue
                compiled = Path(dirpath, name)
                source = compiled.with_name(name.split(".", 1)[0] + ".py")
                try:
                    stale = source.stat().st_mtime > compiled.stat().st_mtime
                except FileNotFoundError:
                    continue
                if stale:
                    raise StaleCompiledModule(
                        f"{source} changed after it was compiled: run `python "
                        "scripts/compile.py` to compile it again, or `python scripts/compile.py "
                        "--clean` to run the sources")


check_compiled([str(Path(__file__).parent)])

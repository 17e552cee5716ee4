"""Compiled modules (scripts/compile.py): never older than their sources, all or none in use."""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mqferry import StaleCompiledModule, check_compiled

ROOT = Path(__file__).resolve().parents[1]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]  # .cpython-311-x86_64-linux-gnu.so


def _load_compile_script():
    spec = importlib.util.spec_from_file_location("compile_script", ROOT / "scripts" / "compile.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pair(pkg: Path, name: str, *, source_newer: bool) -> Path:
    pkg.mkdir(parents=True, exist_ok=True)
    src, so = pkg / f"{name}.py", pkg / f"{name}{SUFFIX}"
    src.write_text("x = 1\n")
    so.write_bytes(b"\x7fELF")
    older, newer = 1_700_000_000, 1_700_000_100
    os.utime(src, (newer, newer) if source_newer else (older, older))
    os.utime(so, (older, older) if source_newer else (newer, newer))
    return src


def test_a_compiled_module_older_than_its_source_is_refused_by_name(tmp_path):
    _pair(tmp_path / "pkg", "fresh", source_newer=False)
    src = _pair(tmp_path / "pkg" / "sub", "codec", source_newer=True)
    with pytest.raises(StaleCompiledModule) as info:
        check_compiled([str(tmp_path / "pkg")])
    assert str(src) in str(info.value)
    assert "scripts/compile.py" in str(info.value)
    assert isinstance(info.value, ImportError)  # an import that cannot go on


def test_fresh_compiled_modules_and_shared_runtimes_pass(tmp_path):
    _pair(tmp_path / "pkg", "codec", source_newer=False)
    (tmp_path / "pkg" / f"abc123__mypyc{SUFFIX}").write_bytes(b"")  # no source: shared code
    (tmp_path / "pkg" / "data.so").write_bytes(b"")  # not an extension of this interpreter
    check_compiled([str(tmp_path / "pkg")])


def test_cache_and_hidden_directories_are_not_walked(tmp_path):
    _pair(tmp_path / "pkg" / "__pycache__", "old", source_newer=True)
    _pair(tmp_path / "pkg" / ".hidden", "old", source_newer=True)
    check_compiled([str(tmp_path / "pkg")])


def test_the_data_path_is_compiled_entirely_or_not_at_all():
    script = _load_compile_script()
    listed = [(rel, module) for rel, modules in script.MODULES.items() for module in modules]
    compiled = [m for rel, m in listed
                if list((ROOT / rel / m).parent.glob(Path(m).stem + ".cpython-*.so"))]
    assert compiled in ([], [m for _, m in listed])
    assert not script.needed() or not compiled
    for _, module in listed:
        name = module.removesuffix(".py").replace("/", ".")
        loaded = importlib.import_module(name).__file__
        assert loaded.endswith(".so") == bool(compiled), name


def test_importing_mqferry_with_a_stale_compiled_module_fails_with_the_remedy(tmp_path):
    # A copy of the package whose compiled module is older than its edited source.
    pkg = tmp_path / "mqferry"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from mqferry._compiled import check_compiled\n")
    (pkg / "_compiled.py").write_text((ROOT / "core" / "mqferry" / "_compiled.py").read_text())
    _pair(pkg / "_mqtt", "codec", source_newer=True)
    done = subprocess.run([sys.executable, "-c", "import mqferry"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(tmp_path)},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "StaleCompiledModule" in done.stderr
    assert "codec.py changed after it was compiled" in done.stderr

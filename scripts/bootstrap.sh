#!/usr/bin/env bash
# Prepares a checkout for development: the .venv with mqferry installed editable with its `dev`
# extra, and the development services' software (scripts/services.sh install). Safe to run again:
# it only does what is missing, and reinstalls the package only when pyproject.toml changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
STAMP="$VENV/.mqferry-bootstrap"

log() { printf 'bootstrap: %s\n' "$*" >&2; }

if [[ ! -x "$VENV/bin/python" ]]; then
    # Debian's python3 lacks ensurepip until python3-venv is installed.
    if ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
        log "installing python3-venv"
        sudo=()
        [[ $EUID -eq 0 ]] || sudo=(sudo)
        export DEBIAN_FRONTEND=noninteractive
        "${sudo[@]}" apt-get update -qq >/dev/null
        "${sudo[@]}" apt-get install -y -qq python3-venv >/dev/null
    fi
    log "creating .venv with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
fi

# The stamp records what was installed; reinstall when the project's metadata changed.
want="$(sha256sum <pyproject.toml | cut -d' ' -f1)"
if [[ ! -f $STAMP || "$(<"$STAMP")" != "$want" ]]; then
    log "pip install -e '.[dev]'"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[dev]'
    printf '%s\n' "$want" >"$STAMP"
fi
# test.sh runs tox from the venv; install it even if the dev extra does not list it.
if [[ ! -x "$VENV/bin/tox" ]]; then
    log "pip install tox"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check tox
fi

# The data path's modules compiled with mypyc (scripts/compile.py); without a C compiler the
# sources run, slower, and this says so.
if ! "$VENV/bin/python" "$ROOT/scripts/compile.py" --if-needed >/dev/null; then
    log "the data path was not compiled (above): mqferry runs from its sources"
fi

bash "$ROOT/scripts/services.sh" install

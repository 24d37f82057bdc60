#!/usr/bin/env bash
# Creates .venv and installs modelc with everything the zoo and the tests need
# (torch and torchvision for running generated modules and the reference checks).
# Idempotent: reinstalls only when pyproject.toml or this script changed.
# MODELC_INSTALL=regular installs a normal (non-editable) copy, as CI does.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Graphviz's `dot` renders diagrams (modelc render); without it modelc still
# writes .dot files and says so.
if ! command -v dot >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq graphviz) >/dev/null 2>&1 ||
    echo "setup: could not install Graphviz (dot); diagrams will be written as .dot only" >&2
fi
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
mode=${MODELC_INSTALL:-editable}
stamp="$VENV/.modelc-setup-$mode"
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ "$mode" = regular ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip "setuptools>=77" wheel
  # torch 2.14.1 + torchvision 0.29.1: the pair the reference checks are pinned to.
  "$VENV/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
  if [ "$mode" = regular ]; then
    "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps .
    "$VENV/bin/python" -m pip install -q ".[dev]"
  else
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
  fi
  echo "$want" > "$stamp"
fi
# The VS Code extension's grammar tests (tests/test_vscode.py) run npm tools, pinned by
# editors/vscode/package-lock.json; without npm that test skips. Reinstalled only when the
# lock changed (the stamp lives in node_modules, which `npm ci` replaces).
if command -v npm >/dev/null 2>&1; then
  ext=editors/vscode
  lock=$(sha256sum "$ext/package-lock.json" | cut -c1-16)
  if [ "$(cat "$ext/node_modules/.modelc-lock" 2>/dev/null)" != "$lock" ]; then
    if (cd "$ext" && npm ci --no-audit --no-fund --loglevel=error >/dev/null); then
      echo "$lock" > "$ext/node_modules/.modelc-lock"
    else
      echo "setup: npm ci failed in $ext; tests/test_vscode.py will try again" >&2
    fi
  fi
fi

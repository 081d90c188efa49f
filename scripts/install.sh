#!/usr/bin/env bash
# Install the tool chain and every pinned dependency into .venv, on a fresh machine or an old one.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
PYTHON=${PYTHON:-python3}

if ! command -v uv >/dev/null 2>&1 || [ "$(uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi
[ -x .venv/bin/python ] || uv venv --quiet --python "$PYTHON" .venv
# Bytecode compiled once here: with PYTHONDONTWRITEBYTECODE set (as on these machines) every
# process of the tests and benches would otherwise compile its imports from source (~9 s of CPU).
uv pip sync --quiet --compile-bytecode --python .venv/bin/python requirements-dev.lock
uv pip install --quiet --python .venv/bin/python --no-deps --no-build-isolation -e . 2>/dev/null \
  || uv pip install --quiet --python .venv/bin/python --no-deps -e .

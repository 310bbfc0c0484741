#!/usr/bin/env bash
# Creates tests/interop/.venv with the Python packages of requirements.txt (exact versions), for
# the suites that drive Python MCP clients. Any failure fails the run.
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || { echo "interop: $python is required" >&2; exit 1; }
if [ ! -x .venv/bin/python ] || ! cmp -s requirements.txt .venv/requirements.txt; then
  rm -rf .venv
  "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/requirements.txt
fi

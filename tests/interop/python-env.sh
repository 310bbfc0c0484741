#!/usr/bin/env bash
# The Python side of the interop suite: a venv at tests/interop/.venv with requirements.txt
# installed (FastMCP and the MCP Python SDK, exact versions). Re-installs when requirements.txt
# changes. Any failure fails the run: nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")"

# Python 3.11 where it is installed (the version requirements.txt was frozen with), else python3.
if [ -z "${PYTHON:-}" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
python=$PYTHON
command -v "$python" >/dev/null 2>&1 || { echo "interop: $python is required (FastMCP)" >&2; exit 1; }
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || { echo "interop: FastMCP needs Python 3.10 or later, found $("$python" --version)" >&2; exit 1; }
stamp=.venv/requirements.installed
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && cmp -s requirements.txt "$stamp"; then
  exit 0
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
.venv/bin/python -c 'import fastmcp, mcp' 
cp requirements.txt "$stamp"

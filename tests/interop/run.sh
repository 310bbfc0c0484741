#!/usr/bin/env bash
# Interop tests: real third-party OAuth clients (the MCP TypeScript and Python SDKs, oauth4webapi,
# FastMCP's client), real MCP servers (FastMCP; server-everything behind the gate) and a JOSE
# library (jose) against the
# release binary target/release/doorman, each with a private Redis, run by node's test runner.
#   tests/interop/run.sh                  every suite
#   tests/interop/run.sh mcp-sdk.test.mjs one file
# INTEROP_KEEP=1 keeps each environment's temporary directory (configs, Doorman and Redis logs).
set -euo pipefail
cd "$(dirname "$0")"

binary=../../target/release/doorman
if [ ! -x "$binary" ]; then
  echo "interop: $binary not found; build it first with: cargo build --release" >&2
  exit 1
fi
command -v redis-server >/dev/null 2>&1 || { echo "interop: redis-server is required" >&2; exit 1; }
command -v node >/dev/null 2>&1 || { echo "interop: node (Node.js 20 or later) is required" >&2; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "interop: Node.js 20 or later is required, found $(node --version)" >&2
  exit 1
fi

# Exact versions from package-lock.json; installed once, node_modules is not committed.
if [ ! -d node_modules ]; then
  npm ci --no-audit --no-fund
fi
# The OpenID Provider of the upstream sign-in runs (oidc-provider, tests/support/oidc);
# scripts/test installs it first, this covers a run of this script alone.
if [ ! -d ../support/oidc/node_modules ]; then
  (cd ../support/oidc && npm ci --no-audit --no-fund)
fi

# FastMCP (PyPI) and the MCP Python SDK in tests/interop/.venv, exact versions; a failed
# install fails the run.
bash ./python-env.sh

if [ "$#" -eq 0 ]; then
  set -- mcp-sdk.test.mjs mcp-sdk-cimd.test.mjs oauth4webapi.test.mjs jose.test.mjs fastmcp.test.mjs \
    gate.test.mjs gate-python.test.mjs
fi
status=0
node --test "$@" || status=$?
exit "$status"

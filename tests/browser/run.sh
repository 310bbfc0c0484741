#!/usr/bin/env bash
# Browser tests: headless Debian Chromium, driven by playwright-core, against the release binary
# target/release/doorman (memory store, password sign-in), run by node's test runner.
#   tests/browser/run.sh                        every suite
#   tests/browser/run.sh journey.test.mjs       one file
# Screenshots of every page go to target/screenshots/. BROWSER_KEEP=1 keeps each environment's
# temporary directory (config, Doorman log). CHROMIUM_PATH overrides /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")"

binary=../../target/release/doorman
if [ ! -x "$binary" ]; then
  echo "browser tests: $binary not found; build it first with: cargo build --release" >&2
  exit 1
fi
chromium=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  echo "browser tests: $chromium not found; install it with: apt-get install -y chromium" >&2
  exit 1
fi
command -v node >/dev/null 2>&1 || { echo "browser tests: node (Node.js 20 or later) is required" >&2; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "browser tests: Node.js 20 or later is required, found $(node --version)" >&2
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

if [ "$#" -eq 0 ]; then
  set -- ./*.test.mjs
fi
node --test "$@"

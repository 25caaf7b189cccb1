#!/usr/bin/env bash
# Create .venv and install redline with its test extras. Idempotent: a second run
# only re-installs when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.redline-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[test]'
  touch "$stamp"
fi
# Reports (PDF/HTML with maps): CJK fonts, WeasyPrint's Pango, poppler for the tests (apt-get, idempotent)
scripts/provision_reports.sh || echo "bootstrap: report rendering is not provisioned; PDF reports may fail" >&2

# Front-end assets (API docs now, the web app later): from the npm registry, pinned by
# web/package-lock.json, installed into web/node_modules (never committed). Re-installed
# only when the lock file changed since the last install.
web_stamp=web/node_modules/.redline-lock.sha256
web_sum=$(cat web/package.json web/package-lock.json | sha256sum | cut -d' ' -f1)
if [ ! -f "$web_stamp" ] || [ "$(cat "$web_stamp")" != "$web_sum" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "bootstrap: npm is not installed; it is needed for the API docs' assets (web/package.json)." >&2
    echo "bootstrap: install Node.js 18+ with npm (e.g. apt-get install npm), then run this again." >&2
    exit 1
  fi
  if ! (cd web && npm ci --no-audit --no-fund --loglevel=error); then
    echo "bootstrap: 'npm ci' in web/ failed: is the npm registry ($(cd web && npm config get registry)) reachable?" >&2
    echo "bootstrap: set a mirror with 'npm config set registry URL' or HTTPS_PROXY, then run this again." >&2
    exit 1
  fi
  echo "$web_sum" > "$web_stamp"
fi

# The web app (web/src, web/index.html): built by Vite into web/dist (never committed), served
# by the API. Rebuilt only when its sources, the config or the lock changed since the last build.
build_sum=$(cd web && find index.html vite.config.js package.json package-lock.json src -type f -print0 \
  | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
build_stamp=web/dist/.redline-build.sha256
if [ ! -f "$build_stamp" ] || [ "$(cat "$build_stamp")" != "$build_sum" ]; then
  if ! (cd web && npm run --silent build); then
    echo "bootstrap: building the web app (npm run build in web/) failed" >&2
    exit 1
  fi
  echo "$build_sum" > "$build_stamp"
fi

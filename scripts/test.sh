#!/usr/bin/env bash
# The full test suite from nothing: set-up, then pytest. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
# The PostGIS tests run for real: provision the local server (idempotent, quick when done).
# If that is impossible they fail, with the reason, rather than being skipped.
scripts/provision_postgis.sh || echo "test.sh: PostGIS could not be provisioned; the PostGIS tests will fail" >&2
export REDLINE_REQUIRE_POSTGIS=${REDLINE_REQUIRE_POSTGIS:-1}
# The browser tests (tests/browser/) drive Debian's chromium with CJK fonts: installed when missing.
scripts/provision_browser.sh || echo "test.sh: the browser could not be provisioned; the browser tests will fail" >&2
# GDAL's own OAPIF client (tests/api/test_gdal_cli.py): Debian's gdal-bin, installed when missing.
scripts/provision_gdal_bin.sh || echo "test.sh: gdal-bin could not be provisioned; the GDAL client tests will fail" >&2
# Lint, format and types first: CI enforces them (configured in pyproject.toml).
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"

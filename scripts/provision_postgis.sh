#!/usr/bin/env bash
# Make a local PostgreSQL server ready for the PostGIS tests. Idempotent; a second
# run only asks the server two questions.
#
#   1. find the server (REDLINE_TEST_POSTGRES_URL, default: local socket, current user)
#      and its major version;
#   2. if the PostGIS extension is not available to it, install the Debian package
#      postgresql-<major>-postgis-3 (needs root and apt-get);
#   3. create the template database redline_test_template with the postgis extension,
#      from which the tests create (and drop) one fresh database per session/module.
#
# Exits non-zero, saying why, when any step is impossible: the PostGIS tests then fail
# (scripts/test.sh sets REDLINE_REQUIRE_POSTGIS=1) instead of being skipped.
set -euo pipefail

ADMIN_URL=${REDLINE_TEST_POSTGRES_URL:-postgresql:///postgres}
TEMPLATE=redline_test_template

say() { echo "provision_postgis: $*" >&2; }
fail() { say "ERROR: $*"; exit 1; }
source "$(dirname "$0")/_debian.sh"
err=$(mktemp)
trap 'rm -f "$err"' EXIT
q() { psql "$ADMIN_URL" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

command -v psql >/dev/null || fail "psql not found: install a PostgreSQL client and server, or set REDLINE_TEST_POSTGRES_URL"
if ! server_num=$(q "SHOW server_version_num" 2>"$err"); then
  # a Debian server that is installed but stopped: start it (root only)
  if [ "$(id -u)" = 0 ] && command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header | awk '$4 != "online" {print $1, $2}' | while read -r ver cluster; do
      say "starting PostgreSQL cluster $ver/$cluster"
      pg_ctlcluster "$ver" "$cluster" start || true
    done
  fi
  server_num=$(q "SHOW server_version_num" 2>"$err") \
    || fail "no PostgreSQL server answers at $ADMIN_URL: $(tr '\n' ' ' <"$err")"
fi
major=$((server_num / 10000))

if [ -z "$(q "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")" ]; then
  pkg="postgresql-${major}-postgis-3"
  debian_install "PostGIS for PostgreSQL $major" "$pkg"
  [ -n "$(q "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")" ] \
    || fail "$pkg is installed but the server at $ADMIN_URL does not offer the postgis extension"
fi

if [ -z "$(q "SELECT 1 FROM pg_database WHERE datname = '$TEMPLATE'")" ]; then
  say "creating template database $TEMPLATE"
  q "CREATE DATABASE $TEMPLATE" 2>"$err" || [ -n "$(q "SELECT 1 FROM pg_database WHERE datname = '$TEMPLATE'")" ] \
    || fail "cannot create database $TEMPLATE (the role needs CREATEDB): $(tr '\n' ' ' <"$err")"
fi
# the same server, database $TEMPLATE (query string, e.g. ?host=, kept)
template_url=$(python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(f"{p.scheme}://{p.netloc}/{sys.argv[2]}" + (f"?{p.query}" if p.query else ""))' "$ADMIN_URL" "$TEMPLATE")
psql "$template_url" -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION IF NOT EXISTS postgis" 2>"$err" \
  || fail "cannot create the postgis extension in $TEMPLATE: $(tr '\n' ' ' <"$err")"
say "ready: PostgreSQL $major with PostGIS $(psql "$template_url" -X -A -t -c "SELECT extversion FROM pg_extension WHERE extname = 'postgis'")"

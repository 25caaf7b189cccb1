#!/usr/bin/env bash
# The nightly batch, for cron: re-check open flags against newly loaded layers, then scan
# every new change product once and write a digest. Needs an installed .venv
# (scripts/bootstrap.sh); it installs nothing itself.
#
#   REDLINE_DATABASE_URL   the store (default sqlite:///redline.db)
#   REDLINE_WATCH          folder(s) new products arrive in, ':'-separated (required unless REDLINE_STAC)
#   REDLINE_STAC           STAC catalog / ItemCollection file(s), ':'-separated
#   REDLINE_DIGEST_DIR     where digests go (default ./digests)
#   REDLINE_WORKERS        local Dask workers (default: serial); or REDLINE_SCHEDULER=tcp://host:8786
#
# Extra arguments go to `redline nightly` (e.g. --retry-failed, --export out/flags.gpkg).
# Exit status: 0 all scanned, 1 some product failed (see the digest), 2 the night could not run.
#
# crontab, every night at 02:30 (cron mails the output when the status is not 0):
#   30 2 * * *  REDLINE_WATCH=/data/incoming REDLINE_DATABASE_URL=sqlite:////data/redline.db /opt/redline/scripts/nightly.sh
set -uo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/redline ]; then
  echo "error: .venv is not installed; run scripts/bootstrap.sh first" >&2
  exit 2
fi
args=(--digest-dir "${REDLINE_DIGEST_DIR:-digests}")
IFS=: read -r -a watch <<< "${REDLINE_WATCH:-}"
for w in "${watch[@]}"; do [ -n "$w" ] && args+=(--watch "$w"); done
IFS=: read -r -a stac <<< "${REDLINE_STAC:-}"
for s in "${stac[@]}"; do [ -n "$s" ] && args+=(--stac "$s"); done
[ -n "${REDLINE_WORKERS:-}" ] && args+=(--workers "$REDLINE_WORKERS")
[ -n "${REDLINE_SCHEDULER:-}" ] && args+=(--scheduler "$REDLINE_SCHEDULER")

.venv/bin/redline recheck || exit $?
exec .venv/bin/redline nightly "${args[@]}" "$@"

#!/usr/bin/env bash
# Make this machine ready to render reports (redline/reports: HTML and PDF with maps) and to
# test them. Idempotent: a second run only checks that the files are there.
#
#   - CJK fonts (Debian's `fonts-noto-cjk`) so Chinese zone and township names render in the
#     PDF and the map figures (never tofu boxes), with fontconfig to find them;
#   - the system libraries WeasyPrint draws with (Pango, HarfBuzz: `libpango-1.0-0`,
#     `libpangoft2-1.0-0`, `libharfbuzz-subset0`);
#   - `poppler-utils` (pdftotext, pdftoppm) for the report tests, which read the PDFs' text and
#     render their pages to PNG.
#
# Exits non-zero, saying why, when it cannot: the report tests then fail, not skip.
set -euo pipefail

say() { echo "provision_reports: $*" >&2; }
fail() { say "ERROR: $*"; exit 1; }
source "$(dirname "$0")/_debian.sh"

need=()
if ! { command -v fc-list >/dev/null && fc-list :lang=zh-cn family | grep -qi "noto"; }; then
  need+=(fonts-noto-cjk fontconfig)
fi
command -v pdftotext >/dev/null && command -v pdftoppm >/dev/null || need+=(poppler-utils)
declare -A libs=([libpango-1.0.so.0]=libpango-1.0-0 [libpangoft2-1.0.so.0]=libpangoft2-1.0-0
                  [libharfbuzz-subset.so.0]=libharfbuzz-subset0)
for lib in "${!libs[@]}"; do
  ldconfig -p 2>/dev/null | grep -q "$lib" || need+=("${libs[$lib]}")
done
[ ${#need[@]} -eq 0 ] && exit 0

debian_install "${need[*]}" "${need[@]}"
fc-list :lang=zh-cn family | grep -qi noto || fail "fonts-noto-cjk is installed but fontconfig finds no Chinese font"
say "ready: $(fc-list :lang=zh-cn family | grep -i noto | head -1), $(pdftotext -v 2>&1 | head -1)"

#!/usr/bin/env bash
# Make a headless browser ready for the browser tests (tests/browser/). Idempotent: a second
# run only checks that the files are there.
#
#   - Debian's `chromium` (driven by Playwright for Python through executable_path: Playwright
#     never downloads a browser of its own);
#   - CJK fonts (`fonts-noto-cjk`) so the Chinese interface renders in screenshots.
#
# REDLINE_CHROMIUM names another Chromium executable and skips the install.
# Exits non-zero, saying why, when it cannot: the browser tests then fail, not skip.
set -euo pipefail

say() { echo "provision_browser: $*" >&2; }
fail() { say "ERROR: $*"; exit 1; }
source "$(dirname "$0")/_debian.sh"

chromium=${REDLINE_CHROMIUM:-/usr/bin/chromium}
need=()
[ -x "$chromium" ] || [ -n "${REDLINE_CHROMIUM:-}" ] || need+=(chromium)
if ! { command -v fc-list >/dev/null && fc-list :lang=zh-cn family | grep -q .; }; then
  need+=(fonts-noto-cjk)
fi
[ ${#need[@]} -eq 0 ] && exit 0

debian_install "${need[*]}" "${need[@]}" fontconfig
[ -x "$chromium" ] || fail "chromium is installed but $chromium is missing"
say "ready: $("$chromium" --version 2>/dev/null || echo chromium)"

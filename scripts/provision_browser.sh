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

chromium=${REDLINE_CHROMIUM:-/usr/bin/chromium}
need=()
[ -x "$chromium" ] || [ -n "${REDLINE_CHROMIUM:-}" ] || need+=(chromium)
if ! { command -v fc-list >/dev/null && fc-list :lang=zh-cn family | grep -q .; }; then
  need+=(fonts-noto-cjk)
fi
[ ${#need[@]} -eq 0 ] && exit 0

[ "$(id -u)" = 0 ] || fail "missing ${need[*]} and this is not root: run 'apt-get install ${need[*]}' as root"
command -v apt-get >/dev/null || fail "missing ${need[*]} and there is no apt-get"
export DEBIAN_FRONTEND=noninteractive
err=$(mktemp)
trap 'rm -f "$err"' EXIT
if ! apt-cache show "${need[@]}" >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>"$err" || fail "apt-get update failed: $(tr '\n' ' ' <"$err")"
fi
say "installing ${need[*]}"
apt-get install -y -qq --no-install-recommends "${need[@]}" fontconfig >/dev/null 2>"$err" \
  || fail "apt-get install ${need[*]} failed: $(tr '\n' ' ' <"$err")"
[ -x "$chromium" ] || fail "chromium is installed but $chromium is missing"
say "ready: $("$chromium" --version 2>/dev/null || echo chromium)"

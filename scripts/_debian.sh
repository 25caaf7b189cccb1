# Sourced by the provision_*.sh scripts (which define say and fail): install Debian packages,
# the one way all of them do it.
#
#   debian_install WHAT PKG...   WHAT says what is missing, for the messages
#
# Needs root and apt-get (else fails, saying what to run). Waits for dpkg's lock, which another
# provisioning run may hold (test.sh runs them in turn; a person may run two at once); updates
# the package lists only when they do not know a package yet.
debian_install() {
  local what=$1
  shift
  [ "$(id -u)" = 0 ] || fail "missing $what and this is not root: run 'apt-get install $*' as root"
  command -v apt-get >/dev/null || fail "missing $what and there is no apt-get to install $*"
  local err
  err=$(mktemp)
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache show "$@" >/dev/null 2>&1; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null 2>"$err" \
      || fail "apt-get update failed: $(tr '\n' ' ' <"$err")"
  fi
  say "installing $*"
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null 2>"$err" \
    || fail "apt-get install $* failed: $(tr '\n' ' ' <"$err")"
  rm -f "$err"
}

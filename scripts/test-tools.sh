#!/usr/bin/env bash
# Install what the browser tests (tests/integration/test_browser.py, testkit/browser.py) need on the host.
#
# Idempotent and quiet: Debian's chromium (driven by Playwright through /usr/bin/chromium; Playwright never
# downloads a browser here) and libnss3-tools (certutil, which makes chromium trust a test CA) are installed
# with apt only when missing. The proxy's and ACME server's programs are not needed here: their images
# carry them. Prints one line. Installing needs root; without it, what is missing is named and the exit
# code is 1.
set -euo pipefail

# apt on a cold machine: the package lists and chromium's ~100 MB of packages.
readonly APT_TIMEOUT_SECONDS=1200
# Another apt run on the host (e.g. scripts/docker-engine.sh) holds dpkg's lock: wait for it, bounded.
readonly APT_LOCK_WAIT_SECONDS=300
readonly APT_LOG="${TMPDIR:-/tmp}/argusai-test-tools-apt.log"

log() { printf 'test-tools: %s\n' "$*" >&2; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v certutil >/dev/null 2>&1 || missing+=(libnss3-tools)

if [ "${#missing[@]}" -eq 0 ]; then
    log "chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}') and certutil present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    log "missing ${missing[*]}; installing needs root (apt-get install ${missing[*]})"
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Bounded: a mirror that stops answering must fail the run, not hang it. The output goes to a log, shown
# only when something fails.
if ! {
    timeout "${APT_TIMEOUT_SECONDS}" apt-get update -q &&
        timeout "${APT_TIMEOUT_SECONDS}" apt-get install -y -q --no-install-recommends \
            -o DPkg::Lock::Timeout="${APT_LOCK_WAIT_SECONDS}" "${missing[@]}"
} >"${APT_LOG}" 2>&1; then
    tail -n 20 "${APT_LOG}" >&2
    log "installing ${missing[*]} failed (log: ${APT_LOG})"
    exit 1
fi
log "installed ${missing[*]}; chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}')"

#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, starting one if needed.
#
# Idempotent: when `docker info` answers and the image tools are present,
# nothing is done. Otherwise, as root: docker.io, mmdebstrap (which builds the
# integration-test images, tests/integration/images/build.py) and gpg (which
# mmdebstrap uses to check the mirror's key) are installed from Debian if
# missing, and dockerd is started in the background with the vfs storage
# driver, which works inside containers and VMs where overlayfs does not.
set -euo pipefail

# How long to wait for a freshly started dockerd to answer.
readonly WAIT_SECONDS=60
# The daemon's log lives outside any repository.
readonly DOCKERD_LOG="${DOCKERD_LOG:-/var/log/argusai-dockerd.log}"
# dockerd's default pid file.
readonly DOCKERD_PIDFILE=/var/run/docker.pid

log() { printf 'docker-engine: %s\n' "$*" >&2; }

engine_answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v gpg >/dev/null 2>&1 || missing+=(gpg)

if engine_answers && { [ "${#missing[@]}" -eq 0 ] || [ "$(id -u)" -ne 0 ]; }; then
    # A running engine is never touched; a non-root caller can't install.
    log "engine already running"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    log "no Docker engine answers and starting one needs root"
    exit 1
fi

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Already running, or started by the package install on a machine with an
# init system.
if engine_answers; then
    log "engine is up"
    exit 0
fi

# A dockerd may already be starting (e.g. a second call right after the
# first): only start one when the pid file names no live process, so the
# call stays idempotent. (A pid file rather than pgrep: procps may be absent
# on a minimal machine.)
dockerd_pid="$(cat "${DOCKERD_PIDFILE}" 2>/dev/null || true)"
if [ -z "${dockerd_pid}" ] || ! kill -0 "${dockerd_pid}" 2>/dev/null; then
    log "starting dockerd (log: ${DOCKERD_LOG})"
    mkdir -p "$(dirname "${DOCKERD_LOG}")"
    # setsid + nohup: the daemon must outlive this script and its session.
    setsid nohup dockerd --storage-driver=vfs >>"${DOCKERD_LOG}" 2>&1 </dev/null &
fi

for _ in $(seq "${WAIT_SECONDS}"); do
    if engine_answers; then
        log "engine is up"
        exit 0
    fi
    sleep 1
done

log "dockerd did not answer 'docker info' within ${WAIT_SECONDS}s; last log lines:"
tail -n 20 "${DOCKERD_LOG}" >&2 || true
exit 1

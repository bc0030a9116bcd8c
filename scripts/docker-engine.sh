#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine, starting one if needed.
#
# Idempotent: when `docker info` answers and the image tools are present,
# nothing is done. Otherwise, as root: docker.io, mmdebstrap (which builds the
# integration-test images, testkit/images/build.py), gpg (which
# mmdebstrap uses to check the mirror's key) and docker-registry (the loopback
# image registry of testkit/registry.py) are installed from Debian if
# missing, and dockerd is started in the background on overlay2, the storage
# driver every ordinary Docker host uses. Only where overlay2 cannot start
# (a kernel or a backing file system without overlayfs) does it fall back to
# vfs, which copies a whole image for every container. The driver in use is
# printed on the last line.
set -euo pipefail

# How long to wait for a freshly started dockerd to answer.
readonly WAIT_SECONDS=90
# The daemon's log lives outside any repository.
readonly DOCKERD_LOG="${DOCKERD_LOG:-/var/log/argusai-dockerd.log}"
# dockerd's default pid file.
readonly DOCKERD_PIDFILE=/var/run/docker.pid
# apt on a cold machine: lists and a few hundred MB of packages.
readonly APT_TIMEOUT_SECONDS=1200
# Tried in this order.
readonly DRIVERS=(overlay2 vfs)

log() { printf 'docker-engine: %s\n' "$*" >&2; }

engine_answers() { command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; }

report_driver() { log "engine is up (storage driver: $(timeout 20 docker info --format '{{.Driver}}' 2>/dev/null || echo unknown))"; }

dockerd_alive() {
    local pid
    pid="$(cat "${DOCKERD_PIDFILE}" 2>/dev/null || true)"
    [ -n "${pid}" ] && kill -0 "${pid}" 2>/dev/null
}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v gpg >/dev/null 2>&1 || missing+=(gpg)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)

if engine_answers && { [ "${#missing[@]}" -eq 0 ] || [ "$(id -u)" -ne 0 ]; }; then
    # A running engine is never touched; a non-root caller can't install.
    report_driver
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    log "no Docker engine answers and starting one needs root"
    exit 1
fi

if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Bounded: a mirror that stops answering must fail the run, not hang it.
    timeout "${APT_TIMEOUT_SECONDS}" apt-get update
    timeout "${APT_TIMEOUT_SECONDS}" apt-get install -y --no-install-recommends "${missing[@]}"
    # The package enables a registry service on every interface where an init system runs; the tests
    # start their own on loopback and need none.
    if command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
    fi
fi

# Already running, or started by the package install on a machine with an
# init system.
if engine_answers; then
    report_driver
    exit 0
fi

wait_for_engine() {
    for _ in $(seq "${WAIT_SECONDS}"); do
        engine_answers && return 0
        # dockerd exits at once when its storage driver cannot start.
        dockerd_alive || return 1
        sleep 1
    done
    return 1
}

# A dockerd may already be starting (e.g. a second call right after the
# first): only start one when the pid file names no live process, so the
# call stays idempotent. (A pid file rather than pgrep: procps may be absent
# on a minimal machine.)
if dockerd_alive; then
    wait_for_engine && { report_driver; exit 0; }
else
    mkdir -p "$(dirname "${DOCKERD_LOG}")"
    for driver in "${DRIVERS[@]}"; do
        log "starting dockerd with --storage-driver=${driver} (log: ${DOCKERD_LOG})"
        # setsid + nohup: the daemon must outlive this script and its session.
        setsid nohup dockerd --storage-driver="${driver}" >>"${DOCKERD_LOG}" 2>&1 </dev/null &
        sleep 1
        if wait_for_engine; then
            report_driver
            exit 0
        fi
        log "dockerd did not start with ${driver}; last log lines:"
        tail -n 5 "${DOCKERD_LOG}" >&2 || true
        # Stop a daemon that is alive but not answering before trying the next driver.
        if dockerd_alive; then
            kill "$(cat "${DOCKERD_PIDFILE}")" 2>/dev/null || true
            sleep 3
        fi
    done
fi

log "dockerd did not answer 'docker info' within ${WAIT_SECONDS}s; last log lines:"
tail -n 20 "${DOCKERD_LOG}" >&2 || true
exit 1

#!/usr/bin/env bash
# Move a stack's data from PostgreSQL (its own server, or one kept elsewhere) back into its SQLite file.
#
# Usage: scripts/move-to-sqlite.sh <namePrefix>-<stack>        e.g. scripts/move-to-sqlite.sh argusai-prod
#
# Run it on the Docker host (or with DOCKER_HOST set) while the stack is still on `database: postgres` or
# `external`, then switch: `pulumi config set argusai:database sqlite && pulumi up`.
#
# 1. stops the backend, so nothing is written to PostgreSQL after the copy (it stays stopped until the
#    `pulumi up` that switches to SQLite replaces it);
# 2. in a throwaway container of the backend's own image, on the backend's network, with its settings and
#    (for a server kept elsewhere) its CA certificate: makes a new SQLite file at the release's head with
#    the schema gate, then copies every row into it with the data move (components/scripts/, copied into
#    the helper under /opt/argusai and run from the image's /app with `python -m`);
# 3. keeps the current SQLite file as /backups/pre-move-back-<UTC time>.sqlite3 and puts the new one in
#    its place, owned by the backend's user.
# PostgreSQL is only read: its data stays where it is. On any failure nothing is replaced and the backend
# is started again, still on PostgreSQL.
set -Eeuo pipefail

readonly HERE="$(cd "$(dirname "$0")/.." && pwd)"
readonly DATA_PATH=/app/data
readonly NEW_FILE="${DATA_PATH}/app.db.from-postgres"
readonly CA_FILE=/etc/argusai/database-ca.pem
# Where the gate and the move go in the helper; on its PYTHONPATH (the working directory stays the image's
# /app, first on sys.path with `python -m`, so the release's own `app` package is importable too).
readonly SCRIPTS_DIR=/opt/argusai
# The release's image runs as uid 1000 (`appuser`); the file must be its own.
readonly APP_UID=1000
readonly DOCKER_TIMEOUT_SECONDS=120
readonly MOVE_TIMEOUT_SECONDS=3600

log() { printf 'move-to-sqlite: %s\n' "$*" >&2; }

if [ "$#" -ne 1 ]; then
    echo "usage: $0 <namePrefix>-<stack>   (e.g. argusai-prod)" >&2
    exit 2
fi
readonly name="$1"
readonly backend="${name}-backend" helper="${name}-move-back"

d() { timeout "${DOCKER_TIMEOUT_SECONDS}" docker "$@"; }

image="$(d inspect --format '{{.Image}}' "${backend}")"
# The network the backend reaches its database on: the stack's own database network, or (a server kept
# elsewhere) the app network.
networks="$(d inspect --format '{{range $net, $_ := .NetworkSettings.Networks}}{{$net}} {{end}}' "${backend}")"
case " ${networks} " in
    *" ${name}-db "*) network="${name}-db" ;;
    *) network="${name}-app" ;;
esac
# The backend's own settings, exported so they reach the helper by name, never on a command line.
while IFS= read -r entry; do
    case "${entry}" in
        DATABASE_URL=* | ENCRYPTION_KEY=* | JWT_SECRET_KEY=*) export "${entry?}" ;;
    esac
done < <(d inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "${backend}")
case "${DATABASE_URL:-}" in
    postgresql*) ;;
    *) log "${backend} is not on PostgreSQL (DATABASE_URL is not postgresql://...); nothing to move"; exit 2 ;;
esac
export MOVE_SOURCE_URL="${DATABASE_URL}"
# The scripts reach the helper as files, copied with `docker cp` (which works with a remote engine too, a
# bind mount would not): a script in an environment variable meets Linux's 128 KiB limit per variable and
# shows in `docker inspect`. Only the modules are staged, no local bytecode caches.
stage="$(mktemp -d)"
readonly stage
trap 'rm -rf "${stage}"' EXIT
mkdir -p "${stage}/argusai/data_move"
cp "${HERE}/components/scripts/data_move/"*.py "${stage}/argusai/data_move/"
cp "${HERE}/components/scripts/schema_gate.py" "${stage}/argusai/"
chmod -R u=rwX,go=rX "${stage}/argusai"

log "stopping ${backend} (nothing is written to PostgreSQL from now on)"
d stop "${backend}" >/dev/null
restart_backend() {
    log "FAILED: nothing was replaced; starting ${backend} again, still on PostgreSQL"
    d rm -f "${helper}" >/dev/null 2>&1 || true
    d start "${backend}" >/dev/null || true
    exit 1
}
trap restart_backend ERR

d rm -f "${helper}" >/dev/null 2>&1 || true
d create --name "${helper}" --user 0 --network "${network}" \
    --volume "${name}-data:${DATA_PATH}" --volume "${name}-backups:/backups" \
    --env MOVE_SOURCE_URL --env ENCRYPTION_KEY --env JWT_SECRET_KEY --env "SCRIPTS_DIR=${SCRIPTS_DIR}" \
    --env "DATABASE_URL=sqlite:///${NEW_FILE}" --env "NEW_FILE=${NEW_FILE}" --env "APP_UID=${APP_UID}" \
    --entrypoint sh "${image}" -c '
        set -e
        rm -f "$NEW_FILE"
        PYTHONPATH="$SCRIPTS_DIR" python -m schema_gate
        PYTHONPATH="$SCRIPTS_DIR" python -m data_move
        current=/app/data/app.db
        if [ -e "$current" ]; then
            kept="/backups/pre-move-back-$(date -u +%Y%m%dT%H%M%SZ).sqlite3"
            cp "$current" "$kept.partial" && mv "$kept.partial" "$kept"
            echo "move-to-sqlite: kept the previous SQLite file as $kept"
        fi
        chown "$APP_UID:$APP_UID" "$NEW_FILE"
        rm -f "$current-journal" "$current-wal" "$current-shm"
        mv "$NEW_FILE" "$current"
    ' >/dev/null
# The release's image keeps its virtualenv in /opt (/opt/venv): `docker cp` makes SCRIPTS_DIR there.
d cp "${stage}/argusai" "${helper}:${SCRIPTS_DIR}"
# A server kept elsewhere: the helper verifies it with the same CA the backend was given.
if d cp "${backend}:${CA_FILE}" - >/dev/null 2>&1; then
    d cp "${backend}:$(dirname "${CA_FILE}")" - | d cp - "${helper}:/etc"
fi
timeout "${MOVE_TIMEOUT_SECONDS}" docker start --attach "${helper}"
status="$(d inspect --format '{{.State.ExitCode}}' "${helper}")"
d rm -f "${helper}" >/dev/null
if [ "${status}" != 0 ]; then
    restart_backend
fi
trap - ERR
log "done: ${name}-data holds the PostgreSQL data as SQLite; ${backend} stays stopped."
log "now switch: pulumi config set argusai:database sqlite && pulumi up"

#!/bin/bash
# Initialise the data directory on first start, then run the PostgreSQL server.
#
# Follows the official `postgres` image's contract as far as a deployment
# relies on it:
# - PGDATA (default /var/lib/postgresql/data) is created, owned by postgres,
#   mode 0700; the server never runs as root.
# - An empty PGDATA is initialised from POSTGRES_USER (default postgres),
#   POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE, POSTGRES_DB (default: the
#   user), POSTGRES_INITDB_ARGS and POSTGRES_HOST_AUTH_METHOD (default
#   scram-sha-256); /docker-entrypoint-initdb.d/*.sh, *.sql and *.sql.gz run
#   once, against a temporary server that listens on the unix socket only, so
#   nothing can connect over TCP before initialisation has finished.
# - An existing PGDATA is used as it is: no initdb, no init scripts.
# - The real server listens on all addresses, port 5432, and pg_hba.conf
#   demands a scram-sha-256 password from every network client.
set -euo pipefail

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
readonly SOCKET_DIR=/var/run/postgresql
readonly INITDB_DIR=/docker-entrypoint-initdb.d
# Seconds pg_ctl waits for the temporary server to start or stop.
readonly PG_CTL_TIMEOUT=60

log() { printf 'postgres-start: %s\n' "$*"; }
die() { printf 'postgres-start: error: %s\n' "$*" >&2; exit 1; }

# As root: prepare the directories, then run this script again as postgres.
if [ "$(id -u)" = 0 ]; then
    mkdir -p "${PGDATA}" "${SOCKET_DIR}"
    # Only what is not already postgres's is chowned: an existing data
    # directory is otherwise left exactly as it was.
    find "${PGDATA}" \! -user postgres -exec chown postgres:postgres '{}' +
    chmod 0700 "${PGDATA}"
    chown postgres:postgres "${SOCKET_DIR}"
    # Sticky and group-writable like the official image, so a container run
    # with another --user can still create its socket there.
    chmod 3777 "${SOCKET_DIR}"
    export HOME=/var/lib/postgresql
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

# Reads VAR or, if set, the file named by VAR_FILE (Docker secrets).
file_env() {
    local var="$1" file_var="${1}_FILE"
    if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
        die "both ${var} and ${file_var} are set; use one"
    fi
    if [ -n "${!file_var:-}" ]; then
        export "${var}=$(< "${!file_var}")"
    fi
}

initialise() {
    file_env POSTGRES_PASSWORD
    local user="${POSTGRES_USER:-postgres}"
    local password="${POSTGRES_PASSWORD:-}"
    local db="${POSTGRES_DB:-${user}}"
    local host_auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

    if [ -z "${password}" ] && [ "${host_auth}" != trust ]; then
        die "the database is uninitialised and no superuser password is set: set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust, never in production)"
    fi

    log "initialising ${PGDATA} for user '${user}', database '${db}'"
    local initdb_args=(--username="${user}" --auth-host="${host_auth}" --auth-local=trust)
    local pwfile=""
    if [ -n "${password}" ]; then
        # The password goes through a private file, never the command line.
        pwfile="$(mktemp)"
        printf '%s\n' "${password}" > "${pwfile}"
        initdb_args+=(--pwfile="${pwfile}")
    fi
    # POSTGRES_INITDB_ARGS is deliberately word-split, like the official image.
    # shellcheck disable=SC2086
    initdb "${initdb_args[@]}" ${POSTGRES_INITDB_ARGS:-} -D "${PGDATA}"
    if [ -n "${pwfile}" ]; then
        rm -f "${pwfile}"
    fi

    # Every network client must present the password.
    printf '\nhost all all all %s\n' "${host_auth}" >> "${PGDATA}/pg_hba.conf"
    # The LLVM JIT provider is left out of this image to keep it small.
    printf "\nlisten_addresses = '*'\njit = off\n" >> "${PGDATA}/postgresql.conf"

    # Temporary server: unix socket only (listen_addresses='').
    pg_ctl -D "${PGDATA}" -o "-c listen_addresses='' -p 5432" -w -t "${PG_CTL_TIMEOUT}" start

    local psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "${user}")
    if [ "${db}" != postgres ]; then
        # Via stdin: psql expands :"db" (quoted identifier) only there, not in -c.
        printf 'CREATE DATABASE :"db";\n' \
            | "${psql[@]}" --dbname postgres --set db="${db}"
    fi

    # Init scripts see the same variables as with the official image.
    export POSTGRES_USER="${user}" POSTGRES_DB="${db}" PGPASSWORD="${password}"
    local f
    for f in "${INITDB_DIR}"/*; do
        [ -e "${f}" ] || continue
        case "${f}" in
            *.sh)
                if [ -x "${f}" ]; then
                    log "running ${f}"
                    "${f}"
                else
                    log "sourcing ${f}"
                    # shellcheck disable=SC1090
                    . "${f}"
                fi
                ;;
            *.sql)
                log "running ${f}"
                "${psql[@]}" --dbname "${db}" -f "${f}"
                ;;
            *.sql.gz)
                log "running ${f}"
                gzip -dc "${f}" | "${psql[@]}" --dbname "${db}"
                ;;
            *)
                log "ignoring ${f}"
                ;;
        esac
    done
    unset PGPASSWORD

    pg_ctl -D "${PGDATA}" -m fast -w -t "${PG_CTL_TIMEOUT}" stop
    log "initialisation complete; starting the server"
}

# `postgres --version`, `--help`, `-C setting`, ... only print something:
# no initialisation for those (as with the official image).
wants_info() {
    local arg
    for arg in "$@"; do
        case "${arg}" in
            -'?'|--help|--describe-config|-C|-V|--version) return 0 ;;
        esac
    done
    return 1
}

if wants_info "$@"; then
    exec "$@"
elif [ -s "${PGDATA}/PG_VERSION" ]; then
    log "${PGDATA} already holds a database; skipping initialisation"
else
    initialise
fi

# The secrets are not needed by the server itself.
unset POSTGRES_PASSWORD POSTGRES_PASSWORD_FILE
exec "$@"

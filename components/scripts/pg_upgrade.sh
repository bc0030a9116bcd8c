# The data of the running PostgreSQL server into the volume of a newer major, run by `sh -c` as root in the
# new major's image (the step `pg-upgrade`) on the database network, before the server is replaced. The
# volume before is mounted read-only at $SOURCE_MOUNT (only to see whether it holds data), the new one at
# $TARGET_MOUNT; libpq's PG* variables reach the running server as the backend does.
#
# Once: a new volume that holds a finished upgrade (its marker) is left as it is. Otherwise, PostgreSQL's
# own way across majors, dump and restore with the newer major's tools:
# 1. the old database is made read-only (and its sessions ended: the backend reconnects, reads go on,
#    writes are refused, so no write it confirms can be missed by the dump);
# 2. a fresh data directory in the new volume (initdb with the stack's user and password, the images'
#    authentication), a temporary server on a private socket only;
# 3. pg_dump (custom format) of the old database, straight into pg_restore in one transaction;
# 4. every table's rows counted on both sides, they must match; ANALYZE; the temporary server stopped;
#    the marker written last.
# Any failure: the old database is made writable again and the new volume emptied, so the old server
# serves on as before and the next `up` starts the upgrade over. After success the old database stays
# read-only: its volume is the way back, as it was when the upgrade began.
set -eu
marker="$TARGET_MOUNT/argusai-upgrade.done"
socket_dir=/tmp/pg-upgrade
say() { echo "pg-upgrade: $*"; }
fail() { echo "pg-upgrade: FAILED: $*" >&2; exit 1; }

major="${PG_MAJOR:-}"
if [ -z "$major" ]; then
    major=$(postgres --version 2>/dev/null | sed -n 's/^postgres (PostgreSQL) \([0-9][0-9]*\).*/\1/p')
fi
[ "$major" = "$TARGET_MAJOR" ] || fail "${IMAGE} runs PostgreSQL ${major:-?}, and argusai:postgresUpgrades ends in ${TARGET_MAJOR}"
old() { psql -X -v ON_ERROR_STOP=1 --no-password -q "$@"; }
if [ -f "$marker" ]; then
    # Finished before. Still the data to serve, unless the old server served writes again since (the way
    # back): its database is no longer read-only, and the new volume holds older data than it.
    running=$(old -Atc 'SHOW server_version_num' 2>/dev/null || true)
    if [ -n "$running" ] && [ $((running / 10000)) != "$major" ] \
        && [ "$(old -Atc 'SHOW default_transaction_read_only')" != on ]; then
        fail "${TARGET_VOLUME} holds an upgrade of older data: the server on ${SOURCE_VOLUME} has taken writes since (the way back). Nothing was changed. To upgrade its data now, remove that volume first, with the version check that holds it mounted (docker rm -f ${TARGET_VOLUME%-pgdata-*}-pgdata-check; docker volume rm ${TARGET_VOLUME}), then run pulumi up --refresh."
    fi
    say "the data in ${TARGET_VOLUME} was upgraded before ($(cat "$marker")); nothing to do"
    exit 0
fi
if [ ! -f "$SOURCE_MOUNT/PG_VERSION" ]; then
    say "no data in ${SOURCE_VOLUME}: PostgreSQL ${major} initialises ${TARGET_VOLUME}"
    exit 0
fi
from=$(cat "$SOURCE_MOUNT/PG_VERSION")
[ "$from" -lt "$major" ] || fail "the data in ${SOURCE_VOLUME} is PostgreSQL ${from}, not older than ${major}"
if command -v gosu >/dev/null 2>&1; then
    as_postgres() { gosu postgres "$@"; }
else
    as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
fi
new() { psql -X -v ON_ERROR_STOP=1 --no-password -q -h "$socket_dir" "$@"; }
# Every table's rows, one "schema.table count" line each, sorted: the same on both sides when all came over.
count_rows() {
    "$@" -At <<'SQL' | sort
SELECT format('SELECT %L || '' '' || count(*) FROM %I.%I', n.nspname || '.' || c.relname, n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
\gexec
SQL
}
old -c 'SELECT 1' >/dev/null 2>&1 || fail "the server on ${SOURCE_VOLUME} does not answer at ${PGHOST}:${PGPORT}; the upgrade dumps from it. Nothing was changed."

end_sessions() {
    old -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()" >/dev/null
}
undo() {
    status=$?
    trap - EXIT
    if [ "$status" -ne 0 ]; then
        as_postgres pg_ctl -D "$TARGET_MOUNT" -m immediate stop >/dev/null 2>&1 || true
        find "$TARGET_MOUNT" -mindepth 1 -delete 2>/dev/null || true
        # Writable again (this session is read-only by the database's default until it says otherwise), and
        # the sessions opened while it was read-only ended (they would stay read-only).
        if printf 'SET default_transaction_read_only = off;\nALTER DATABASE :"db" RESET default_transaction_read_only;\n' \
            | old --set=db="$PGDATABASE" && end_sessions; then
            echo "pg-upgrade: FAILED: nothing was changed: ${SOURCE_VOLUME} serves on, read-write; ${TARGET_VOLUME} is empty again" >&2
        else
            echo "pg-upgrade: FAILED, and the database on ${SOURCE_VOLUME} could not be made writable again: in psql on that server run SET default_transaction_read_only = off; ALTER DATABASE ${PGDATABASE} RESET default_transaction_read_only;" >&2
        fi
    fi
    exit "$status"
}
trap undo EXIT

say "PostgreSQL ${from} (${SOURCE_VOLUME}) to ${major} (${TARGET_VOLUME})"
# 1. The old database read-only from here on; its sessions ended so that every new one is.
printf 'ALTER DATABASE :"db" SET default_transaction_read_only = on;\n' | old --set=db="$PGDATABASE"
end_sessions

# 2. A fresh data directory (a half-made one from an interrupted run is cleared) and a private server.
find "$TARGET_MOUNT" -mindepth 1 -delete
chown postgres:postgres "$TARGET_MOUNT"
chmod 0700 "$TARGET_MOUNT"
mkdir -p "$socket_dir"
chown postgres:postgres "$socket_dir"
pwfile=$(mktemp)
printf '%s\n' "$PGPASSWORD" >"$pwfile"
chown postgres "$pwfile"
as_postgres initdb -D "$TARGET_MOUNT" --username="$PGUSER" --pwfile="$pwfile" \
    --auth-host=scram-sha-256 --auth-local=trust >/dev/null
rm -f "$pwfile"
printf '\nhost all all all scram-sha-256\n' >>"$TARGET_MOUNT/pg_hba.conf"
printf "\nlisten_addresses = '*'\n" >>"$TARGET_MOUNT/postgresql.conf"
as_postgres pg_ctl -D "$TARGET_MOUNT" -w -t 120 -o "-c listen_addresses='' -k $socket_dir" start >/dev/null
if [ "$PGDATABASE" != postgres ]; then
    printf 'CREATE DATABASE :"db";\n' | new -d postgres --set=db="$PGDATABASE"
fi

# 3. Dump with this (the newer) major's pg_dump, restore in one transaction.
started=$(date +%s.%N)
pg_dump --format=custom --no-password | pg_restore -h "$socket_dir" -d "$PGDATABASE" --no-password \
    --single-transaction --exit-on-error
seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

# 4. Every row over, then the planner's statistics (a restore has none).
count_rows old >/tmp/rows.old
count_rows new -d "$PGDATABASE" >/tmp/rows.new
if ! cmp -s /tmp/rows.old /tmp/rows.new; then
    diff /tmp/rows.old /tmp/rows.new >&2 || true
    fail "the restored data differs from the server's in the rows above"
fi
rows=$(awk '{ total += $2 } END { print total + 0 }' /tmp/rows.new)
new -d "$PGDATABASE" -c 'ANALYZE' >/dev/null
as_postgres pg_ctl -D "$TARGET_MOUNT" -w -t 120 -m fast stop >/dev/null
echo "from PostgreSQL ${from} (${SOURCE_VOLUME}) at $(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$marker"
chown postgres:postgres "$marker"
say "${rows} rows in $(wc -l </tmp/rows.new) tables dumped and restored in ${seconds} s, counted on both sides; ${SOURCE_VOLUME} is kept, read-only"

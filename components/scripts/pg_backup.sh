# Backup loop for PostgreSQL, run by `sh -c` in the PostgreSQL image (pg_dump matches the server).
# Connection comes from PGHOST/PGPORT/PGUSER/PGDATABASE/PGPASSWORD; policy from BACKUP_INTERVAL_HOURS and
# BACKUP_KEEP. A backup is taken whenever the newest complete one is older than the interval (so a
# restart, or a redeploy after data loss, does not push good backups out with a dump of an empty
# database), and at once on SIGHUP (`docker kill --signal HUP <container>`).
# With BACKUP_ONCE=1: one dump named $BACKUP_PREFIX-<UTC time>.dump (e.g. `pre-upgrade`), nothing pruned,
# exit status that of pg_dump.
# The loop's outcome, for the container's healthcheck and a monitor, in $BACKUP_STATUS_DIR (outside the
# backups volume, which may be the thing that is full): `succeeded` (the UTC time and the file) after
# each backup, `failed` (the UTC time and the cause) after a failed one, removed by the next success.
set -u
dir="${BACKUP_DIR:-/backups}"
prefix="${BACKUP_PREFIX:-argusai}"
status="${BACKUP_STATUS_DIR:-}"
check_seconds=60
due=0
sleeper=
trap 'exit 0' TERM INT
# The sleeper is stopped with SIGKILL: a child killed between its fork and its exec still runs the
# shell's own handlers, which swallow SIGTERM (measured: one HUP in five lost on a busy machine).
trap 'due=1; [ -n "$sleeper" ] && kill -KILL "$sleeper" 2>/dev/null' HUP
backup() {
    # One-second names: never reuse the newest backup's name.
    while [ -e "$dir/$prefix-$(date -u +%Y%m%dT%H%M%SZ).dump" ]; do sleep 1; done
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    tmp="$dir/.$prefix-$stamp.dump.partial"
    # Written under a hidden temporary name and renamed only when pg_dump succeeded, so a half-written
    # dump is never mistaken for a good one.
    if pg_dump --format=custom --no-password --file="$tmp" && readable "$tmp" && mv "$tmp" "$dir/$prefix-$stamp.dump"; then
        if [ -n "${BACKUP_KEEP:-}" ]; then
            ls -1 "$dir/$prefix"-*.dump 2>/dev/null | sort -r | tail -n "+$((BACKUP_KEEP + 1))" | xargs -r rm -f --
        fi
        # Reported before it is logged: whoever reads the log line finds the status already written.
        report succeeded "$prefix-$stamp.dump"
        echo "backup: wrote $prefix-$stamp.dump"
    else
        rm -f "$tmp"
        report failed "pg_dump failed ($(free_space) free on the backups volume; the cause is in the container's log)"
        # pg_dump's own message, just above in the log, names the cause (a full disk, a refused login).
        echo "backup: pg_dump failed" >&2
        return 1
    fi
}
readable() {
    # pg_dump does not always notice a write that failed (measured: a full volume gave an empty file and
    # exit status 0), so a dump counts only once pg_restore can read its table of contents.
    pg_restore --list "$1" >/dev/null && return 0
    echo "backup: the dump cannot be read back ($(free_space) free on the backups volume)" >&2
    return 1
}
free_space() {
    df -Pk "$dir" | awk 'NR == 2 { print $4 " KiB of " $2 " KiB" }'
}
report() {
    # report succeeded|failed TEXT: the outcome where the healthcheck reads it.
    [ -n "$status" ] || return 0
    mkdir -p "$status"
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $2" > "$status/.$1" && mv "$status/.$1" "$status/$1"
    [ "$1" = failed ] || rm -f "$status/failed"
}
if [ "${BACKUP_ONCE:-0}" = 1 ]; then
    BACKUP_KEEP=  # one-shot dumps are never pruned
    backup
    exit
fi
rm -f "$dir/.$prefix"-*.partial
recent() {
    [ -n "$(find "$dir" -maxdepth 1 -name "$prefix-*.dump" -mmin "-$((BACKUP_INTERVAL_HOURS * 60))")" ]
}
if recent; then
    echo "backup: a backup from the last ${BACKUP_INTERVAL_HOURS}h exists; next one when it is due"
fi
while :; do
    if [ "$due" = 1 ] || ! recent; then
        due=0
        backup
    fi
    sleep "$check_seconds" &
    sleeper=$!
    # A HUP that came after the check above but before $sleeper was set found nothing to stop.
    [ "$due" = 1 ] && kill -KILL "$sleeper" 2>/dev/null
    wait "$sleeper"
    sleeper=
done

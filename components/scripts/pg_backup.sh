# Backup loop for PostgreSQL, run by `sh -c` in the PostgreSQL image (pg_dump matches the server).
# Connection comes from PGHOST/PGPORT/PGUSER/PGDATABASE/PGPASSWORD; policy from BACKUP_INTERVAL_HOURS and
# BACKUP_KEEP. A backup is taken whenever the newest complete one is older than the interval (so a
# restart, or a redeploy after data loss, does not push good backups out with a dump of an empty
# database), and at once on SIGHUP (`docker kill --signal HUP <container>`).
# With BACKUP_ONCE=1: one dump named $BACKUP_PREFIX-<UTC time>.dump (e.g. `pre-upgrade`), nothing pruned,
# exit status that of pg_dump.
set -u
dir="${BACKUP_DIR:-/backups}"
prefix="${BACKUP_PREFIX:-argusai}"
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
    if pg_dump --format=custom --no-password --file="$tmp"; then
        mv "$tmp" "$dir/$prefix-$stamp.dump"
        if [ -n "${BACKUP_KEEP:-}" ]; then
            ls -1 "$dir/$prefix"-*.dump 2>/dev/null | sort -r | tail -n "+$((BACKUP_KEEP + 1))" | xargs -r rm -f --
        fi
        echo "backup: wrote $prefix-$stamp.dump"
    else
        rm -f "$tmp"
        echo "backup: pg_dump failed" >&2
        return 1
    fi
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

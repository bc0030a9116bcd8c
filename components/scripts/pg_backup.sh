# Backup loop for PostgreSQL, run by `sh -c` in the PostgreSQL image (pg_dump matches the server).
# Connection comes from PGHOST/PGPORT/PGUSER/PGDATABASE/PGPASSWORD; policy from BACKUP_INTERVAL_HOURS and
# BACKUP_KEEP. A backup is taken at start and then every interval; `docker restart` takes one now.
set -u
dir=/backups
trap 'exit 0' TERM INT
rm -f "$dir"/.argusai-*.partial
backup() {
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    tmp="$dir/.argusai-$stamp.dump.partial"
    # Written under a hidden temporary name and renamed only when pg_dump succeeded, so a half-written
    # dump is never mistaken for a good one.
    if pg_dump --format=custom --no-password --file="$tmp"; then
        mv "$tmp" "$dir/argusai-$stamp.dump"
        ls -1 "$dir"/argusai-*.dump 2>/dev/null | sort -r | tail -n "+$((BACKUP_KEEP + 1))" | xargs -r rm -f --
        echo "backup: wrote argusai-$stamp.dump"
    else
        rm -f "$tmp"
        echo "backup: pg_dump failed" >&2
    fi
}
backup
while :; do
    sleep "$((BACKUP_INTERVAL_HOURS * 3600))" &
    wait $!
    backup
done

# Whenever the stack's PostgreSQL server is created or its password changes, run by `sh -c` in the server's
# own image (the step `postgres-role`), with no network and the server's socket directory mounted at
# $SOCKET_DIR: sets the password of $ROLE to $NEW_PASSWORD with ALTER ROLE. The images trust connections
# on the unix socket (initdb's default, kept by the official image), so the previous password is never
# needed. The password reaches psql on its standard input only (never a command line), and the session
# turns statement logging off first, so it reaches no server log either, not even when the statement fails.
set -eu
if [ ! -S "$SOCKET_DIR/.s.PGSQL.5432" ]; then
    echo "postgres-role: FAILED: the server's socket is not in $SOCKET_DIR: is the server running? Nothing was changed." >&2
    exit 1
fi
WRITABLE_AGAIN=$(cat <<'SQL'
SELECT EXISTS (
    SELECT 1 FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
    WHERE d.datname = current_database() AND s.setrole = 0
      AND 'default_transaction_read_only=on' = ANY (s.setconfig)
) AS was_read_only \gset
\if :was_read_only
ALTER DATABASE :"database" RESET default_transaction_read_only;
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid();
\endif
SQL
)
# A literal in single quotes: doubled single quotes are the only escape (standard_conforming_strings).
quoted=$(printf '%s' "$NEW_PASSWORD" | sed "s/'/''/g")
# A database an upgrade left read-only (the way back serves it again) is made writable again, and the
# sessions opened while it was read-only are ended (the backend's pool opens new, writable ones).
if ! printf "%s\n%s\n%s\n%s\nALTER ROLE :\"role\" PASSWORD '%s';\n%s\n" \
        "SET log_statement = 'none';" \
        "SET log_min_error_statement = 'panic';" \
        "SET log_min_duration_statement = -1;" \
        "SET default_transaction_read_only = off;" \
        "$quoted" \
        "$WRITABLE_AGAIN" \
        | psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --no-password \
            -h "$SOCKET_DIR" -U "$ROLE" -d "$DATABASE" --set=role="$ROLE" --set=database="$DATABASE" >/dev/null; then
    echo "postgres-role: FAILED: could not set the password of role $ROLE on the running server (above: psql's error). Nothing else was changed: the backend and the backups keep the password they had." >&2
    exit 1
fi
echo "postgres-role: role $ROLE has the stack's password"

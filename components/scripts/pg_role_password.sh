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
# A literal in single quotes: doubled single quotes are the only escape (standard_conforming_strings).
quoted=$(printf '%s' "$NEW_PASSWORD" | sed "s/'/''/g")
if ! printf "%s\n%s\n%s\nALTER ROLE :\"role\" PASSWORD '%s';\n" \
        "SET log_statement = 'none';" \
        "SET log_min_error_statement = 'panic';" \
        "SET log_min_duration_statement = -1;" \
        "$quoted" \
        | psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --no-password \
            -h "$SOCKET_DIR" -U "$ROLE" -d "$DATABASE" --set=role="$ROLE" >/dev/null; then
    echo "postgres-role: FAILED: could not set the password of role $ROLE on the running server (above: psql's error). Nothing else was changed: the backend and the backups keep the password they had." >&2
    exit 1
fi
echo "postgres-role: role $ROLE has the stack's password"

# Version check for a PostgreSQL server kept elsewhere, run by `sh -c` in the client image (postgresImage).
# Connects as the backend will (PGHOST/PGPORT/PGUSER/PGDATABASE/PGPASSWORD, PGSSLMODE, PGSSLROOTCERT) and
# fails when this image's pg_dump is older than the server's major version: pg_dump refuses to dump a
# newer server, so the backups would fail. CLIENT_IMAGE names the image in the message.
set -u
if ! server_num=$(psql -X -A -t -q -c 'SHOW server_version_num'); then
    echo "pg-version: FAILED: cannot connect to the server ${PGHOST}:${PGPORT} (database ${PGDATABASE}, sslmode ${PGSSLMODE:-prefer}); psql's error is above" >&2
    exit 1
fi
server_major=$((server_num / 10000))
dump_major=$(pg_dump --version | sed -n 's/^pg_dump (PostgreSQL) \([0-9][0-9]*\).*/\1/p')
if [ -z "${dump_major}" ]; then
    echo "pg-version: FAILED: cannot read pg_dump's version in ${CLIENT_IMAGE}" >&2
    exit 1
fi
if [ "${dump_major}" -lt "${server_major}" ]; then
    echo "pg-version: FAILED: the server runs PostgreSQL ${server_major}, and pg_dump in ${CLIENT_IMAGE} is ${dump_major}: it cannot back the server up. Set argusai:postgresImage to an image of PostgreSQL ${server_major} or newer (e.g. postgres:${server_major}-alpine)." >&2
    exit 1
fi
ssl=$(psql -X -A -t -q -c 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')
echo "pg-version: server PostgreSQL ${server_major} (${server_num}), pg_dump ${dump_major}, TLS ${ssl:-unknown}: backups can be taken"

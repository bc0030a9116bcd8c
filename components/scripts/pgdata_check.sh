# Before PostgreSQL starts from a new image on the stack's data, run by `sh -c` in that image (the step
# `pgdata-check`), with the data volume mounted read-only at $PGDATA_MOUNT. A server of another major
# version cannot read the data ("database files are incompatible with server") and would restart forever;
# an image that keeps its data elsewhere (PostgreSQL 18's images: /var/lib/postgresql/18/docker) would
# start on an empty directory beside it. Both stop `pulumi up` here, before the running server is touched.
# IMAGE and VOLUME name the image and the volume in the messages; EXPECTED_PGDATA is where the program
# mounts the data; EXPECTED_MAJOR (when set) is the last major of argusai:postgresUpgrades, the image's.
set -u
if [ "${PGDATA:-$EXPECTED_PGDATA}" != "$EXPECTED_PGDATA" ]; then
    echo "pgdata-check: FAILED: ${IMAGE} keeps its data in ${PGDATA} (the layout of PostgreSQL 18's images), not ${EXPECTED_PGDATA} where the volume ${VOLUME} is mounted: it would start an empty server beside the data. Set argusai:postgresImage to an image that uses ${EXPECTED_PGDATA} (PostgreSQL 17 or older)." >&2
    exit 1
fi
major="${PG_MAJOR:-}"
if [ -z "$major" ]; then
    major=$(postgres --version 2>/dev/null | sed -n 's/^postgres (PostgreSQL) \([0-9][0-9]*\).*/\1/p')
fi
if [ -z "$major" ]; then
    echo "pgdata-check: FAILED: cannot tell which PostgreSQL ${IMAGE} runs (no PG_MAJOR, no postgres --version)" >&2
    exit 1
fi
if [ -n "${EXPECTED_MAJOR:-}" ] && [ "$major" != "$EXPECTED_MAJOR" ]; then
    echo "pgdata-check: FAILED: ${IMAGE} runs PostgreSQL ${major}, and argusai:postgresUpgrades ends in ${EXPECTED_MAJOR}, whose data volume ${VOLUME} is the one that serves. Nothing was changed. Set argusai:postgresImage to a PostgreSQL ${EXPECTED_MAJOR} image, or the last entry of argusai:postgresUpgrades to ${major}." >&2
    exit 1
fi
if [ ! -f "$PGDATA_MOUNT/PG_VERSION" ]; then
    echo "pgdata-check: no data in ${VOLUME} yet: PostgreSQL ${major} initialises it"
    exit 0
fi
data_major=$(cat "$PGDATA_MOUNT/PG_VERSION")
if [ "$data_major" != "$major" ]; then
    if [ "$data_major" -lt "$major" ]; then
        way="To upgrade the data to PostgreSQL ${major}, add ${major} to argusai:postgresUpgrades (pulumi config set --path 'argusai:postgresUpgrades[N]' ${major}, N the next index) and run pulumi up: the data is copied into a volume of its own and this one is kept (README: Upgrading PostgreSQL). Or set"
    else
        way="Set"
    fi
    echo "pgdata-check: FAILED: the data in ${VOLUME} is PostgreSQL ${data_major}, and ${IMAGE} runs PostgreSQL ${major}, which cannot read it. Nothing was changed: the server runs as it did. ${way} argusai:postgresImage back to a PostgreSQL ${data_major} image." >&2
    exit 1
fi
echo "pgdata-check: the data in ${VOLUME} is PostgreSQL ${data_major}, as ${IMAGE}"

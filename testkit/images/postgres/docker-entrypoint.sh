#!/bin/bash
# Entry point of the argusai-test/postgres stand-in image (PID 1 at start).
#
# Picks the signal handling, then hands over to dumb-init, which stays PID 1:
# - running the server (`postgres ...`, or only options): dumb-init rewrites
#   SIGTERM (what `docker stop` sends; `docker import` cannot set STOPSIGNAL)
#   to SIGINT, PostgreSQL's "fast shutdown", so a stop is quick and clean;
# - any other command (a `sh -c` pg_dump loop, psql, ...): plain dumb-init,
#   so the command gets SIGTERM as usual and is not left ignoring it as PID 1.
set -euo pipefail

# Like the official image: `docker run img -c foo=bar` means `postgres -c ...`.
if [ "$#" -eq 0 ] || [ "${1:0:1}" = '-' ]; then
    set -- postgres "$@"
fi

if [ "$1" = postgres ]; then
    exec dumb-init --rewrite 15:2 -- /usr/local/bin/postgres-start.sh "$@"
fi

exec dumb-init -- "$@"

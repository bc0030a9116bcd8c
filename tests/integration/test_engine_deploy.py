"""Deploying from nothing, in PostgreSQL and SQLite mode, and replacing containers, on a real engine."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from components.backend import DATA_PATH
from testkit.provider import duration_ns
from testkit.times import created_at

from .conftest import BACKEND_IMAGE, FRONTEND_IMAGE, LIBPQ_URL, POSTGRES_IMAGE, Stack, wait_for

pytestmark = pytest.mark.integration

PG_DB = "argus_events"
PG_USER = "argus_app"
POSTGRES_GRACE_SECONDS = 30
HEALTHY_TIMEOUT = 90
HOSTILE_PASSWORD = "p@ss:w/rd%?#"
# Every service, non-default role and database names.
FULL_POSTGRES = {"database": "postgres", "postgresDb": PG_DB, "postgresUser": PG_USER, "frontendImage": FRONTEND_IMAGE}
# psql over the database network with the URL from the stack outputs; the URL travels in the
# environment so it never shows up in a command line or an assertion message.
PSQL_TABLES = (
    f'psql {LIBPQ_URL} -v ON_ERROR_STOP=1 -tA -c "SELECT current_database()" '  # noqa: S608 - fixed text
    "-c \"SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables "
    "WHERE table_schema = 'public'\" -c \"SELECT count(*) FROM events WHERE note = 'startup'\""
)


def psql_tables(stack: Stack) -> tuple[int, str]:
    """Ask PostgreSQL, from a throwaway container on the database network, what the backend created."""
    return stack.oneoff(
        POSTGRES_IMAGE,
        ["sh", "-c", PSQL_TABLES],
        network=stack.physical("db"),
        environment={"DATABASE_URL": stack.output("databaseUrl")},
    )


# Asked inside the frontend's container: its server proxies /api/health to the backend's alias.
FRONTEND_TO_BACKEND = "fetch('http://127.0.0.1:3000/api/health').then(r => console.log(r.status))"


def test_postgres_from_nothing(stack: Stack) -> None:
    """PostgreSQL mode from an empty engine: every service healthy, the schema in the chosen database."""
    deployment = stack.up(FULL_POSTGRES)

    postgres = stack.container("postgres").attrs
    declared = deployment.container("postgres").plain("healthcheck")
    # Healthy through the healthcheck the program declared (pg_isready over TCP), not some default.
    assert postgres["Config"]["Healthcheck"]["Test"] == declared["tests"]
    assert postgres["Config"]["Healthcheck"]["Interval"] == duration_ns(declared["interval"])
    assert postgres["State"]["Health"]["Status"] == "healthy"
    assert "accepting connections" in postgres["State"]["Health"]["Log"][-1]["Output"]
    for role in ("backend", "frontend"):
        assert stack.container(role).attrs["State"]["Health"]["Status"] == "healthy"
    assert stack.healthy()
    # Through the proxy, the one origin: the page from the frontend, the API from the backend.
    assert stack.http("GET", "/", port=stack.http_port)[0] == 200
    assert stack.http("GET", "/health", port=stack.http_port)[0] == 200
    # The frontend's own server side reaches the backend by its alias over the app network.
    code, out = stack.exec("frontend", ["node", "-e", FRONTEND_TO_BACKEND])
    assert (code, out.strip()) == (0, "200"), out

    code, out = psql_tables(stack)
    assert code == 0, out
    assert out.split() == [PG_DB, "alembic_version,events", "1"]
    # A second `pulumi up` right away would change nothing.
    # As the provider reads it back from dockerd (durations, log options, ports, network mode).
    assert stack.plan(FULL_POSTGRES).summary() == []

    # As the engine schedules them: what depends on nothing under way starts at once, side by side. The
    # driver waits for no server: it is created while the data's version check runs, before the server
    # that one-by-one creation (in declaration order) put ahead of it.
    assert created_at(stack.container("driver").attrs) < created_at(stack.container("postgres").attrs)


def test_sqlite_default_keeps_rows_across_replacement(stack: Stack) -> None:
    """SQLite by default: the file lives in the data volume and outlives the backend container."""
    deployment = stack.up({"backupEnabled": False})
    assert not deployment.of_type("docker:index/network:Network")[1:], "SQLite mode has no database network"
    assert stack.healthy()
    stack.post_notes(["before-1", "before-2"])

    code, out = stack.oneoff(
        BACKEND_IMAGE,
        ["sh", "-c", f"test -s {DATA_PATH}/app.db && echo present"],
        volumes={stack.physical("data"): {"bind": DATA_PATH, "mode": "ro"}},
    )
    assert (code, out.strip()) == (0, "present")

    replaced = stack.applier.replace(stack.state, deployment, "backend")
    assert replaced.new_id != replaced.old_id
    wait_for("backend /health after replacement", stack.healthy, HEALTHY_TIMEOUT)
    assert stack.notes() == ["startup", "before-1", "before-2", "startup"]


def test_postgres_replacement_shuts_down_cleanly(stack: Stack) -> None:
    """Replacing PostgreSQL (as an image upgrade does) stops it cleanly within its grace period."""
    deployment = stack.up({"database": "postgres", "backupEnabled": False})
    stack.post_notes(["kept"])

    replaced = stack.applier.replace(stack.state, deployment, "postgres")
    assert replaced.stop_seconds < POSTGRES_GRACE_SECONDS, "stop ran into the grace period (SIGKILL)"
    log = stack.container("postgres").logs().decode(errors="replace")
    assert "already holds a database; skipping initialisation" in log
    assert "database system was shut down at" in log
    assert "database system was not properly shut down" not in log
    assert "automatic recovery in progress" not in log
    wait_for("backend /health after the database came back", stack.healthy, HEALTHY_TIMEOUT)
    assert "kept" in stack.notes()


def test_hostile_password_reaches_backend_and_backups(stack: Stack) -> None:
    """A password full of URL delimiters works for the backend (URL-encoded) and pg_dump (PGPASSWORD)."""
    stack.up({"database": "postgres"}, secrets={"postgresPassword": HOSTILE_PASSWORD})
    assert stack.healthy()
    stack.post_notes(["hostile"])
    assert stack.notes() == ["startup", "hostile"]
    # Booleans only: an assertion message must never show the URL, which holds the password.
    raw_in_url = HOSTILE_PASSWORD in stack.output("databaseUrl")
    encoded_in_url = quote(HOSTILE_PASSWORD, safe="") in stack.output("databaseUrl")
    assert not raw_in_url, "the password must be percent-encoded in the URL"
    assert encoded_in_url
    wait_for(
        "the backup taken at start",
        lambda: "backup: wrote" in stack.container("backup").logs().decode(errors="replace"),
        HEALTHY_TIMEOUT,
    )

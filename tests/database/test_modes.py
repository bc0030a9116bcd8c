"""The database mode: decided once, and each mode answers the questions that differ per database."""

from __future__ import annotations

import logging

import pytest

from components.database import database_mode
from components.database.postgres import PostgresMode
from components.database.sqlite import SqliteMode
from components.scripts import IN_CONTAINER
from components.settings import load_settings
from testkit.harness import Deployment, commit, layered_config, run_program

#: Where the release's steps find their modules: one zip (components/scripts: `Script.bundle`).
RELEASE_ZIP = f"{IN_CONTAINER}/release_steps.zip"


def test_decided_from_the_database_key(embedded: Deployment, prod: Deployment) -> None:
    """SQLite unless `database: postgres`; only PostgreSQL mode asks for the database network."""
    import pulumi

    for stack, mode in (("embedded", SqliteMode), ("prod", PostgresMode)):
        config, secrets = layered_config(stack)
        pulumi.runtime.set_all_config(config, secrets)
        assert database_mode(load_settings(pulumi.Config("argusai"), "argusai", stack)) is mode
    assert not SqliteMode.uses_database_network
    assert PostgresMode.uses_database_network


def test_sqlite_backup_plan_runs_in_the_backend_image_with_no_network(embedded: Deployment) -> None:
    """The backend image (Python's sqlite3), the data volume read from, no network at all."""
    backup, api = embedded.container("backup"), embedded.container("backend")
    assert backup.plain("image") == api.plain("image")
    assert backup.plain("networkMode") == "none"
    assert backup.env()["BACKUP_SOURCE"] == "/app/data/app.db"
    assert api.urn in backup.dependencies


def test_postgres_backup_plan_uses_the_servers_image_and_libpq_from_the_url_values(prod: Deployment) -> None:
    """pg_dump of the server's own image, on the database network, PG* taken from the URL's values."""
    backup, server = prod.container("backup"), prod.container("postgres")
    assert backup.plain("image") == server.plain("image")
    assert [n["name"] for n in backup.plain("networksAdvanced")] == ["argusai-prod-db"]
    env = backup.env()
    url = prod.outputs["databaseUrl"].value
    assert (
        url
        == f"postgresql+psycopg://{env['PGUSER']}:{env['PGPASSWORD']}@{env['PGHOST']}:{env['PGPORT']}/{env['PGDATABASE']}"
    )
    assert backup.is_secret("envs")


def test_both_modes_export_the_database_and_keep_the_pgdata_volume() -> None:
    """DatabaseUrl (secret) and pgdataVolume in both modes: leaving PostgreSQL keeps its data volume."""
    for stack in ("embedded", "prod"):
        outputs = run_program(stack).outputs
        assert outputs["databaseUrl"].secret
        assert outputs["pgdataVolume"].value == f"argusai-{stack}-pgdata"


def test_driver_is_named_in_the_url() -> None:
    """`postgresDriver: psycopg2` for an image that carries psycopg2."""
    url = run_program("prod", {"postgresDriver": "psycopg2"}).outputs["databaseUrl"].value
    assert url.startswith("postgresql+psycopg2://")


def test_postgres_backend_gets_a_pool_sized_for_one_backend(prod: Deployment, embedded: Deployment) -> None:
    """PostgreSQL: 5 + 5 connections, checked before use, recycled; SQLite ignores pools (none set)."""
    env = prod.container("backend").env()
    assert (env["DB_POOL_SIZE"], env["DB_MAX_OVERFLOW"], env["DB_POOL_PRE_PING"]) == ("5", "5", "true")
    assert "DB_POOL_SIZE" not in embedded.container("backend").env()


def test_schema_gate_runs_before_the_backend_serves(prod_deployed: Deployment, embedded_deployed: Deployment) -> None:
    """A pre-upgrade backup, then the release's steps in one container, then the backend; rerun per image.

    On a stack whose backend may be serving (its network is there); a new stack's: `tests/test_backend_start.py`.
    """
    prod, embedded = prod_deployed, embedded_deployed
    for deployment, parts, user, log in (
        # PostgreSQL: the data move after the gate, as root (its copy and report go to the backups volume).
        (prod, "schema_gate key_rotation admin_seed data_move", "0", "/backups/steps/release-steps.log"),
        (embedded, "schema_gate key_rotation admin_seed", None, "/app/data/schema-gate/release-steps.log"),
    ):
        backend, steps, backup = (deployment.container(r) for r in ("backend", "release-steps", "schema-backup"))
        assert backup.urn in steps.dependencies
        assert steps.urn in backend.dependencies
        assert steps.plain("image") == backend.plain("image")
        assert steps.plain("user") == user
        env = steps.env()
        assert env["RELEASE_PARTS"] == parts
        assert env["STEP_LOG"] == log
        assert env["DATABASE_URL"] == backend.env()["DATABASE_URL"]
        # Every module in one zip on PYTHONPATH: one copy before the container starts, not one per file.
        (upload,) = steps.plain("uploads")
        assert upload["file"] == RELEASE_ZIP
        assert env["PYTHONPATH"].split(":")[0] == RELEASE_ZIP
        uploaded = steps.uploaded()
        assert "alembic" in uploaded[f"{RELEASE_ZIP}/schema_gate.py"]
        assert {f"{RELEASE_ZIP}/{name}" for name in ("release_steps.py", "key_rotation.py", "admin_seed.py")} <= set(
            uploaded
        )
        assert (f"{RELEASE_ZIP}/data_move/__main__.py" in uploaded) == (deployment is prod)
        assert steps.is_secret("envs")
    # PostgreSQL: pg_dump of the server's image, tied to the backend image so it reruns with it.
    pg_backup = prod.container("schema-backup")
    assert pg_backup.plain("image") == prod.container("postgres").plain("image")
    assert pg_backup.env()["FOR_BACKEND_IMAGE"] == prod.container("backend").plain("image")
    # SQLite: the backend image as root (the backups volume is root's).
    assert embedded.container("schema-backup").plain("user") == "0"


def test_the_pre_upgrade_backup_of_the_stacks_own_server_goes_over_its_socket(prod: Deployment) -> None:
    """No password (the images trust the socket): it runs beside the role step, not after it."""
    backup, role, server = (prod.container(r) for r in ("schema-backup", "postgres-role", "postgres"))
    env = backup.env()
    assert (env["PGHOST"], env["PGUSER"], env["PGDATABASE"]) == ("/var/run/postgresql", "argusai", "argusai")
    assert "PGPASSWORD" not in env
    socket = [v for v in backup.plain("volumes") if v["containerPath"] == "/var/run/postgresql"]
    assert [v["volumeName"] for v in socket] == ["argusai-prod-pgsocket"]
    assert server.urn in backup.dependencies
    assert role.urn not in backup.dependencies
    # What connects with the password still waits for the role step.
    assert role.urn in prod.container("release-steps").dependencies


def test_schema_gate_can_be_turned_off_for_images_without_alembic() -> None:
    """`schemaGate: false`: none of the release's steps (gate, first admin); the backend depends on its database."""
    deployment = run_program("embedded", {"schemaGate": False})
    steps = sorted(r.name for r in deployment.registrations if r.type == "argusai:step:Step")
    assert steps == ["frontend-check"]
    assert deployment.outputs["adminPassword"].value is None


def test_leaving_a_server_for_sqlite_says_where_the_data_is_and_how_to_bring_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """From postgres to sqlite a warning names the kept data and the command; sqlite to sqlite: none."""
    first = run_program("it", {"database": "postgres"})
    state = commit(first)
    with caplog.at_level(logging.WARNING):
        run_program("it", {"database": "sqlite"}, prior=state)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "changed from postgres to sqlite" in w and "scripts/move-to-sqlite.sh argusai-it" in w for w in warnings
    ), warnings
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run_program("it", {"database": "sqlite"}, prior=commit(run_program("it", {"database": "sqlite"})))
    assert not [r for r in caplog.records if "move-to-sqlite" in r.getMessage()]
    assert first.outputs["databaseMode"].value == "postgres"


def test_a_new_server_of_the_stacks_own_runs_the_release_steps_again(prod: Deployment, embedded: Deployment) -> None:
    """The server's image id is among the release's steps' inputs: after a major upgrade the gate checks the schema."""
    server_image = prod.container("postgres").plain("image")
    assert prod.container("release-steps").env()["FOR_DATABASE_IMAGE"] == server_image
    assert "FOR_DATABASE_IMAGE" not in embedded.container("release-steps").env()

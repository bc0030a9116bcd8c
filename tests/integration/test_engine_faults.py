"""Faults: PostgreSQL crashing, and the backend starting while PostgreSQL is down."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from testkit import plan as planning
from testkit.applier import ApplyError
from testkit.harness import Deployment
from testkit.images.derive import derive_image
from testkit.images.recipes import POSTGRES

from .conftest import POSTGRES_IMAGE, Stack, record_result, wait_for

pytestmark = pytest.mark.integration

RECOVERY_TIMEOUT = 90
UNHEALTHY_WAIT_SECONDS = 8
#: Where PostgreSQL 18's images keep their data (a directory of the volume they mount one level up).
PG18_DATA = "/var/lib/postgresql/18/docker"
FAILED_STARTS = 2  # backend starts seen failing before PostgreSQL is started again


def postmaster_pid(container_pid: int) -> int:
    """Host pid of the PostgreSQL server: the `postgres` child of the container's init (dumb-init)."""
    children = Path(f"/proc/{container_pid}/task/{container_pid}/children").read_text().split()
    found = [int(pid) for pid in children if Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"]
    assert len(found) == 1, f"expected one postgres child of pid {container_pid}, found {found}"
    return found[0]


def test_postgres_killed_comes_back(stack: Stack) -> None:
    """SIGKILL of the server (a crash, not a manual stop): the restart policy and crash recovery bring it back."""
    stack.up({"database": "postgres", "backupEnabled": False})
    stack.post_notes(["committed-before-crash"])
    postgres = stack.container("postgres")
    restarts = postgres.attrs["RestartCount"]

    started = time.monotonic()
    # From the host, not `docker kill`: the engine must see a crash, which its restart policy handles.
    os.kill(postmaster_pid(postgres.attrs["State"]["Pid"]), signal.SIGKILL)
    wait_for("the backend to notice", lambda: not stack.healthy(), RECOVERY_TIMEOUT, interval=0.2)
    wait_for("backend /health 200 again", stack.healthy, RECOVERY_TIMEOUT)
    record_result(f"RESULT fault=postgres-sigkill recovered_seconds={time.monotonic() - started:.1f}")

    postgres.reload()
    assert postgres.attrs["RestartCount"] > restarts
    log = postgres.logs().decode(errors="replace")
    assert "database system was not properly shut down; automatic recovery in progress" in log
    assert "committed-before-crash" in stack.notes()


def test_backend_restarted_while_postgres_down(stack: Stack) -> None:
    """A backend started without its database fails and keeps retrying; it recovers once PostgreSQL is back."""
    stack.up({"database": "postgres", "backupEnabled": False})
    postgres, backend = stack.container("postgres"), stack.container("backend")
    postgres.stop()  # a manual stop: the engine leaves it stopped
    backend.restart()
    backend.reload()
    restarts = backend.attrs["RestartCount"]

    def failed_again() -> bool:
        backend.reload()
        return backend.attrs["RestartCount"] >= restarts + FAILED_STARTS

    wait_for("the backend to fail its start-up and be restarted", failed_again, RECOVERY_TIMEOUT)
    # Each restart followed a failed start: the backend refuses to run without its database.
    assert backend.logs().decode(errors="replace").count("unusable at start-up") >= FAILED_STARTS
    assert not stack.healthy()

    started = time.monotonic()
    postgres.start()
    wait_for("backend /health 200 after PostgreSQL came back", stack.healthy, RECOVERY_TIMEOUT)
    record_result(f"RESULT fault=backend-without-db recovered_seconds={time.monotonic() - started:.1f}")


def _unhealthy_postgres(stack: Stack, config: dict[str, object]) -> Deployment:
    """The program's declarations, with PostgreSQL's healthcheck made to fail and its wait cut short."""
    deployment = stack.program(config)
    postgres = deployment.container("postgres")
    postgres.inputs["healthcheck"] = {**postgres.plain("healthcheck"), "tests": ["CMD", "false"]}
    postgres.inputs["waitTimeout"] = UNHEALTHY_WAIT_SECONDS
    return deployment


def test_failed_wait_is_not_accepted_on_the_next_up(stack: Stack) -> None:
    """PostgreSQL never healthy: `up` fails before the backend; the next `up` retries it instead of going on.

    Without `replaceOnChanges: ["*"]` the engine would turn the init error into an empty update on the
    second run and create the backend against a database that never became healthy.
    """
    config: dict[str, object] = {"database": "postgres", "backupEnabled": False}
    backend = stack.physical("backend")
    for attempt in (1, 2):
        deployment = _unhealthy_postgres(stack, config)
        if attempt == 2:
            # Retried, not accepted (the plan lists steps in the order the program registered them, which
            # the order its outputs resolve in decides: not the point here).
            steps = [str(s) for s in planning.plan(stack.state, deployment).changes]
            assert "replace postgres-container (#initerror)" in steps, steps
        with pytest.raises(ApplyError, match="failed to be in healthy state"):
            stack.apply(deployment)
        assert not stack.client.containers.list(all=True, filters={"name": backend}), f"attempt {attempt}"
    # Healthy again (the program's own healthcheck): PostgreSQL replaced, then the backend created.
    stack.up(config)
    wait_for("backend /health", stack.healthy, RECOVERY_TIMEOUT)


@pytest.mark.parametrize(
    ("label", "changes", "refusal"),
    [
        ("pg17", ["ENV PG_MAJOR=17"], "the data in {volume} is PostgreSQL 15, and {image} runs PostgreSQL 17"),
        ("pg18-layout", [f"ENV PGDATA={PG18_DATA}"], f"keeps its data in {PG18_DATA}"),
    ],
)
def test_an_image_that_cannot_read_the_data_is_refused_with_the_server_untouched(
    stack: Stack, derived: list[str], label: str, changes: list[str], refusal: str
) -> None:
    """A PostgreSQL image of another major (or PostgreSQL 18's layout): `up` stops before the server is touched.

    Without the check the server is replaced and restarts forever ("database files are incompatible"), or
    starts empty beside the data.
    """
    config: dict[str, object] = {"database": "postgres", "backupEnabled": False}
    stack.up(config)
    stack.post_notes(["kept-by-the-refusal"])
    server = stack.container("postgres").id
    image = derive_image(stack.client, POSTGRES_IMAGE, label, changes=changes, repository=POSTGRES.repository)
    derived.append(image)

    with pytest.raises(ApplyError, match="pgdata-check"):
        stack.up({**config, "postgresImage": image})
    code, log = stack.oneoff(
        POSTGRES_IMAGE,
        ["cat", "/backups/steps/pgdata-check.log"],
        volumes={stack.physical("backups"): {"bind": "/backups", "mode": "ro"}},
    )
    assert code == 0, log
    assert refusal.format(volume=stack.physical("pgdata"), image=image) in log, log
    assert stack.container("postgres").id == server, "the running server was left as it was"
    assert stack.container("postgres").status == "running"
    assert stack.healthy()
    assert "kept-by-the-refusal" in stack.notes()

    stack.up(config)  # back to the image that reads the data: nothing else to do
    wait_for("backend /health", stack.healthy, RECOVERY_TIMEOUT)
    assert stack.container("postgres").id == server
    record_result(f"RESULT fault=pgdata-{label}: refused before the server was touched; server and data as they were")

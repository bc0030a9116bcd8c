"""Faults under load, on the real release: a client writes events all along, and none it was told of goes missing.

A client writes events through the release's own API (`POST /api/v1/events`, for a camera made through
the API) at a steady rate while a fault happens; afterwards every event the API acknowledged (201) is
looked up by id. The figure that must be zero is "acknowledged and then missing"; failed writes and the
longest gap between two acknowledged writes are printed.

- A backup taken while the client writes (the backup container's own, asked for with SIGHUP as the README
  says), then the database lost and the README's restore run on the redeployed stack: every event
  acknowledged before the backup began is back.
- A new release (one more migration: the gate's backup, the migration, the backend replaced), and the move
  from SQLite into PostgreSQL (one config key), each by `up` under writes: every acknowledged event is
  there afterwards, on the other side of the move too.
- The backups volume full (a small tmpfs): the backup fails loudly (its container unhealthy, the cause in
  its log), the older backups stay, the writes go on; once there is room the next backup succeeds, no `up`.
- PostgreSQL killed (SIGKILL from the host, as the OOM killer does): the restart policy and crash recovery
  bring it back and the backend reconnects by itself (no restart of the backend).
- The Docker engine restarted (the host's reboot), with a SQLite and a PostgreSQL stack: every service
  comes back with no `pulumi up`, the backend serves again whatever order the containers start in, and no
  one-shot step runs again. It stops every container on the engine, so it runs alone (`exclusive`).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import docker
import pytest

from components.naming import LABEL_ROLE, LABEL_STACK, Naming
from testkit.engine import restart_engine
from testkit.images.recipes import ARGUSAI_BACKEND
from testkit.release_api import EventWriter, Session, longest_gap, missing_events, seed, sign_in

from .conftest import NAME_PREFIX, Stack, record_result, wait_for
from .test_argusai_deploy import HEALTHY_TIMEOUT, RELEASE, admin_password, release_with_migration
from .test_engine_backups import (
    backup_now,
    complete_backups,
    first_backup,
    lose_data,
    restore_postgres,
    restore_sqlite,
    settled,
    take_backup,
)
from .test_engine_faults import postmaster_pid

pytestmark = [pytest.mark.argusai, pytest.mark.load]

#: Writes a second: a few cameras' events, steady.
RATE = 10
#: Acknowledged writes before the fault, and after it, that show the client is really writing.
STEADY_WRITES = 20
RECOVERY_TIMEOUT = 180
#: The services a stack runs (restart policy `unless-stopped`); every other role is a one-shot step.
SERVICES = {
    "sqlite": {"backend", "proxy", "old-ports", "backup"},
    "postgres": {"postgres", "backend", "proxy", "old-ports", "backup"},
}
#: dockerd's event filter counts whole seconds: wait past the current one for the last events.
EVENTS_SETTLE = timedelta(seconds=2)


def writing(stack: Stack) -> EventWriter:
    """The client, writing; returns once it has had STEADY_WRITES acknowledged."""
    session = seed(f"http://127.0.0.1:{stack.backend_port}", admin_password(stack))
    writer = EventWriter(session, rate=RATE).start()
    wait_for("the client's first writes", lambda: len(writer.acknowledged) >= STEADY_WRITES, RECOVERY_TIMEOUT)
    return writer


def resumed(writer: EventWriter, since: float) -> Callable[[], bool]:
    """Whether STEADY_WRITES were acknowledged after `since` (monotonic)."""
    return lambda: sum(1 for t in writer.acknowledged_at if t > since) >= STEADY_WRITES


def report_fault(fault: str, writer: EventWriter, began: float, ended: float) -> None:
    """Print the fault's figures and check the one that must be zero."""
    missing = missing_events(writer.session, writer.acknowledged)
    gap = longest_gap(writer.acknowledged_at, began, ended)
    record_result(
        f"RESULT load fault={fault} acknowledged={len(writer.acknowledged)} failed_writes={writer.failed} "
        f"longest_gap_seconds={gap:.1f} acknowledged_then_missing={len(missing)}"
    )
    assert missing == [], f"{fault}: {len(missing)} acknowledged events missing"


#: The volumes that hold a mode's database (a failed disk loses them).
DATABASE_VOLUMES = {"sqlite": ("data",), "postgres": ("pgdata", "data")}


@pytest.mark.parametrize("mode", ["sqlite", "postgres"])
def test_a_backup_taken_under_writes_restores_every_event_acknowledged_before_it(stack: Stack, mode: str) -> None:
    """The backup finishes under a steady writer; restored after the data is lost, nothing before it is missing."""
    config = {"database": mode, **RELEASE}
    stack.up(config)
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    password = admin_password(stack)
    writer = writing(stack)
    try:
        first_backup(stack, mode)
        acknowledged_before = list(writer.acknowledged)
        began = time.monotonic()
        backup, seconds = backup_now(stack, mode)
        wait_for("writes after the backup", resumed(writer, time.monotonic()), RECOVERY_TIMEOUT)
    finally:
        writer.stop()
    report_fault(f"backup-{mode}", writer, began, time.monotonic())
    record_result(f"RESULT load backup {mode}: {seconds:.1f} s under {RATE} writes/s, restored below")

    url = stack.output("databaseUrl")
    lose_data(stack, DATABASE_VOLUMES[mode])
    stack.up(config, refresh=True)
    settled(stack)
    if mode == "sqlite":
        restore_sqlite(stack, ARGUSAI_BACKEND.tag, backup)
    else:
        restore_postgres(stack, url, backup)
    wait_for("the release's /health after the restore", stack.healthy, HEALTHY_TIMEOUT)
    base_url = writer.session.base_url
    restored = Session(base_url, sign_in(base_url, password), writer.session.camera_id)
    missing = missing_events(restored, acknowledged_before)
    record_result(
        f"RESULT load backup {mode}: acknowledged before it {len(acknowledged_before)}, missing after the "
        f"restore {len(missing)}"
    )
    assert missing == []


def test_postgres_killed_under_writes_loses_no_acknowledged_event(stack: Stack) -> None:
    """SIGKILL of PostgreSQL mid-writes: it recovers, the same backend reconnects, writes resume."""
    stack.up({"database": "postgres", **RELEASE, "backupEnabled": False})
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    backend_started = stack.container("backend").attrs["State"]["StartedAt"]
    postgres = stack.container("postgres")
    restarts = postgres.attrs["RestartCount"]
    writer = writing(stack)
    killed = time.monotonic()
    os.kill(postmaster_pid(postgres.attrs["State"]["Pid"]), signal.SIGKILL)
    try:
        wait_for("writes acknowledged again after the kill", resumed(writer, killed), RECOVERY_TIMEOUT)
    finally:
        writer.stop()
    postgres.reload()
    assert postgres.attrs["RestartCount"] > restarts, "PostgreSQL was restarted by its restart policy"
    # Reconnected by itself (the pool's pre-ping), not by a restart of the backend.
    assert stack.container("backend").attrs["State"]["StartedAt"] == backend_started
    report_fault("postgres-sigkill", writer, killed, time.monotonic())


#: The new release's one migration: a table of its own.
UPGRADE_MIGRATION_BODY = 'op.create_table("load_probe", sa.Column("id", sa.Integer, primary_key=True))'


def test_an_upgrade_and_the_move_to_postgres_under_writes_lose_no_acknowledged_event(
    stack: Stack, engine: docker.DockerClient, derived: list[str]
) -> None:
    """`up` to a new release, then `up` to PostgreSQL, with the client writing all along."""
    stack.up(RELEASE)
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    writer = writing(stack)
    newer = release_with_migration(engine, UPGRADE_MIGRATION_BODY, label="load-upgrade")
    derived.append(newer)
    started = time.monotonic()
    try:
        for fault, config in (
            ("upgrade", {**RELEASE, "backendImage": newer}),
            ("move-to-postgres", {**RELEASE, "backendImage": newer, "database": "postgres"}),
        ):
            serving = stack.container("backend").id
            began = time.monotonic()
            stack.up(config)
            wait_for(f"{fault}: the new backend's /health", stack.healthy, HEALTHY_TIMEOUT)
            assert stack.container("backend").id != serving, f"{fault}: the backend was replaced"
            wait_for(f"{fault}: writes acknowledged again", resumed(writer, time.monotonic()), RECOVERY_TIMEOUT)
            ended = time.monotonic()
            record_result(
                f"RESULT load {fault}: up {ended - began:.1f} s under {RATE} writes/s, longest gap between "
                f"acknowledged writes {longest_gap(writer.acknowledged_at, began, ended):.1f} s"
            )
    finally:
        writer.stop()
    assert stack.container("postgres")
    report_fault("upgrade-then-move", writer, started, time.monotonic())


#: The backups volume of the full-disk test: a tmpfs this small, made before the first `up`.
FULL_VOLUME_BYTES = 16 * 1024 * 1024
#: What each backup says when the disk is full: in the container's log (one of the causes), and in the
#: health probe's output.
FULL_DISK = {
    "sqlite": (("database or disk is full",), "database or disk is full"),
    # pg_dump says so when a write fails in its own hands, and may say nothing when it fails in the kernel's
    # buffers (measured on a small database: an empty file and exit status 0); the read-back check says so.
    "postgres": (("No space left on device", "the dump cannot be read back"), "free on the backups volume"),
}


@pytest.mark.parametrize("mode", ["sqlite", "postgres"])
def test_a_full_backups_volume_under_writes_fails_loudly_and_heals_without_an_up(stack: Stack, mode: str) -> None:
    """A full backups volume fails loudly while the app keeps writing; room made, the next backup succeeds.

    Full: the backup container unhealthy with the cause, the older backups kept, every write acknowledged
    kept. The volume is a small tmpfs made before the first `up` (the provider adopts a volume of that name).
    """
    stack.client.volumes.create(
        stack.physical("backups"),
        driver="local",
        driver_opts={"type": "tmpfs", "device": "tmpfs", "o": f"size={FULL_VOLUME_BYTES}"},
        labels=Naming(NAME_PREFIX, stack.name).labels("backups"),
    )
    stack.up({"database": mode, **RELEASE})
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    writer = writing(stack)
    try:
        take_backup(stack, mode)
        kept = complete_backups(stack, mode)
        wait_for("the backup container healthy", lambda: stack.health("backup") == "healthy", HEALTHY_TIMEOUT)

        # Whatever room is left, taken: the next backup cannot be written.
        began = time.monotonic()
        stack.exec("backup", ["sh", "-c", "cat /dev/zero > /backups/filler; true"])
        stack.container("backup").kill(signal="SIGHUP")
        wait_for("the backup unhealthy", lambda: stack.health("backup") == "unhealthy", HEALTHY_TIMEOUT)
        health_log = stack.container("backup").attrs["State"]["Health"]["Log"][-1]["Output"]
        container_log = stack.container("backup").logs().decode(errors="replace")
        causes, in_health = FULL_DISK[mode]
        assert in_health in health_log, health_log
        named = [cause for cause in causes if cause in container_log]
        assert named, container_log[-2000:]
        in_log = named[0]
        assert complete_backups(stack, mode) == kept, "the older backups are kept"
        wait_for("writes acknowledged with the disk full", resumed(writer, time.monotonic()), RECOVERY_TIMEOUT)

        stack.exec("backup", ["rm", "/backups/filler"])
        room = time.monotonic()
        stack.container("backup").kill(signal="SIGHUP")
        wait_for("the backup healthy again", lambda: stack.health("backup") == "healthy", HEALTHY_TIMEOUT)
        assert len(complete_backups(stack, mode)) == len(kept) + 1, "the next backup succeeded, with no up"
        healed = time.monotonic() - room
    finally:
        writer.stop()
    record_result(
        f"RESULT load backups volume full {mode}: unhealthy with '{in_log}', older backup kept; "
        f"healthy again {healed:.0f} s after room was made, no up"
    )
    report_fault(f"backups-volume-full-{mode}", writer, began, time.monotonic())


@pytest.mark.exclusive
def test_engine_restart_under_writes_brings_every_stack_back(make_stack: Callable[[], Stack]) -> None:
    """The host's reboot: both stacks serve again with no `up`, no step runs again, no acknowledged event lost."""
    stacks = {"sqlite": make_stack(), "postgres": make_stack()}
    for mode, stack in stacks.items():
        stack.up({"database": mode, **RELEASE})
        wait_for(f"{mode}: the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    writers = {mode: writing(stack) for mode, stack in stacks.items()}
    client = stacks["sqlite"].client
    since = datetime.now(tz=UTC) - timedelta(seconds=1)
    stopped = time.monotonic()
    try:
        answered = restart_engine(client)
        for mode, stack in stacks.items():
            wait_for(f"{mode}: /health 200 after the engine restart", stack.healthy, RECOVERY_TIMEOUT)
            record_result(
                f"RESULT engine restart {mode}: backend serving {time.monotonic() - answered:.1f} s after the "
                f"engine answered ({answered - stopped:.1f} s to stop and start the engine)"
            )
        for mode, writer in writers.items():
            wait_for(f"{mode}: writes acknowledged again", resumed(writer, answered), RECOVERY_TIMEOUT)
    finally:
        for writer in writers.values():
            writer.stop()
    events = client.events(
        since=since,
        until=datetime.now(tz=UTC) + EVENTS_SETTLE,
        filters={"event": "start", "label": f"{LABEL_STACK}"},
        decode=True,
    )
    started: dict[str, set[str]] = {stack.name: set() for stack in stacks.values()}
    for event in events:
        attributes = event["Actor"]["Attributes"]
        if attributes.get(LABEL_STACK) in started:
            started[attributes[LABEL_STACK]].add(attributes.get(LABEL_ROLE, ""))
    for mode, stack in stacks.items():
        # The services came back by their restart policy; a one-shot step (gate, seed, driver) did not.
        assert started[stack.name] == SERVICES[mode], (mode, started[stack.name])
        report_fault(f"engine-restart-{mode}", writers[mode], stopped, time.monotonic())

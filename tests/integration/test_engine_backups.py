"""Backups (issue 4): taken by the backup container, pruned, and restored with the README's commands.

The restore commands below are run verbatim (names filled in) through the `docker` CLI, exactly as an
operator would type them after `export DATABASE_URL="$(pulumi stack output --show-secrets databaseUrl)"`.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest
from docker.errors import APIError

from components.naming import LABEL_STACK

from .conftest import BACKEND_IMAGE, POSTGRES_IMAGE, Stack, record_result, wait_for

pytestmark = pytest.mark.integration

BACKUP_TIMEOUT = 60
HEALTHY_TIMEOUT = 90
COMMAND_TIMEOUT = 120
ROWS = 50
BACKUP_FILE = {
    "postgres": re.compile(r"^argusai-\d{8}T\d{6}Z\.dump$"),
    "sqlite": re.compile(r"^argusai-\d{8}T\d{6}Z\.sqlite3$"),
}
# The README's restore procedures. Stop the writers, restore from the backup volume (mounted read-only)
# in a throwaway container, start the writers again. SQLite: `--entrypoint sh`, so whatever entry point
# the backend image has (migrations, ...) does not run against a half-restored file.
PG_RESTORE = (
    "docker stop {backend} {backup}",
    "docker run --rm --network {db_network} -v {backups}:/backups:ro -e DATABASE_URL {postgres_image} "
    "sh -c 'pg_restore --clean --if-exists --single-transaction --no-password "
    '--dbname="${{DATABASE_URL%%+*}}://${{DATABASE_URL#*://}}" /backups/{file}\'',
    "docker start {backend} {backup}",
)
SQLITE_RESTORE = (
    "docker stop {backend} {backup}",
    "docker run --rm --network none -v {data}:/app/data -v {backups}:/backups:ro --entrypoint sh {backend_image} "
    "-c 'rm -f /app/data/app.db-wal /app/data/app.db-shm /app/data/app.db-journal "
    "&& cp /backups/{file} /app/data/app.db.restoring && mv /app/data/app.db.restoring /app/data/app.db'",
    "docker start {backend} {backup}",
)
RESTORE_STEP = 1  # which command of a procedure is the restore itself (timed)


def backup_files(stack: Stack) -> list[str]:
    """Every file in the backup volume, as the running backup container sees it."""
    try:
        code, out = stack.exec("backup", ["ls", "-1A", "/backups"])
    except APIError:  # restarting right now
        return []
    return sorted(out.split()) if code == 0 else []


def complete_backups(stack: Stack, mode: str) -> list[str]:
    """Finished backups only: a `.partial` file is a backup still being written."""
    return [name for name in backup_files(stack) if BACKUP_FILE[mode].match(name)]


def first_backup(stack: Stack, mode: str) -> None:
    """Wait for the backup the loop takes at start (due: none younger than the interval)."""
    wait_for("the first backup, due at start", lambda: complete_backups(stack, mode), BACKUP_TIMEOUT)


def take_backup(stack: Stack, mode: str) -> tuple[str, float]:
    """After the first backup, ask for one now; return the new file and the seconds it took."""
    first_backup(stack, mode)
    return backup_now(stack, mode)


def backup_now(stack: Stack, mode: str) -> tuple[str, float]:
    """Ask for a backup now (SIGHUP, as the README says); return the new file and the seconds it took."""
    before = set(complete_backups(stack, mode))
    started = time.monotonic()
    stack.container("backup").kill(signal="SIGHUP")
    new = wait_for("a new complete backup", lambda: set(complete_backups(stack, mode)) - before, BACKUP_TIMEOUT)
    seconds = time.monotonic() - started
    assert len(new) == 1, new
    return new.pop(), seconds


def settled(stack: Stack) -> None:
    """Wait until the backup loop has decided at start (backed up, or found a recent backup)."""
    wait_for("the backup loop's first decision", lambda: b"backup:" in stack.container("backup").logs(), BACKUP_TIMEOUT)


def lose_data(stack: Stack, roles: tuple[str, ...]) -> None:
    """Lose the volumes holding the database (a failed disk) and the containers using them.

    The backups volume and the stack's state (its secrets) stay; the README's answer is `pulumi up --refresh`.
    """
    for container in stack.client.containers.list(all=True, filters={"label": f"{LABEL_STACK}={stack.name}"}):
        container.remove(force=True)
    for role in roles:
        stack.client.volumes.get(stack.physical(role)).remove()


def run_procedure(commands: tuple[str, ...], env: dict[str, str] | None = None, **names: str) -> float:
    """Run README commands through the shell; return the seconds the restore step took."""
    timed = 0.0
    for index, template in enumerate(commands):
        started = time.monotonic()
        done = subprocess.run(  # noqa: S603 - the README's own commands, names filled in by the test
            ["sh", "-c", template.format(**names)],  # noqa: S607 - sh from PATH, as an operator's shell
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        assert done.returncode == 0, f"step {index} failed ({done.returncode}): {done.stderr.strip()}"
        if index == RESTORE_STEP:
            timed = time.monotonic() - started
    return timed


def restore_postgres(stack: Stack, url: str, file: str) -> float:
    """The README's PostgreSQL restore of `file` on this stack (`url`: its DATABASE_URL); the restore's seconds."""
    return run_procedure(
        PG_RESTORE,
        env={"DATABASE_URL": url},
        backend=stack.physical("backend"),
        backup=stack.physical("backup"),
        db_network=stack.physical("db"),
        backups=stack.physical("backups"),
        postgres_image=POSTGRES_IMAGE,
        file=file,
    )


def restore_sqlite(stack: Stack, backend_image: str, file: str) -> float:
    """The README's SQLite restore of `file` on this stack; the seconds the restore step took."""
    return run_procedure(
        SQLITE_RESTORE,
        backend=stack.physical("backend"),
        backup=stack.physical("backup"),
        data=stack.physical("data"),
        backups=stack.physical("backups"),
        backend_image=backend_image,
        file=file,
    )


def test_postgres_backup_and_restore(stack: Stack) -> None:
    """pg_dump backup, data volume lost, redeploy, pg_restore from the backup volume: every row back."""
    stack.up({"database": "postgres"})
    stack.post_notes([f"pg-row-{i}" for i in range(ROWS)])
    expected = stack.notes()
    backup, backup_seconds = take_backup(stack, "postgres")
    before_loss = complete_backups(stack, "postgres")
    url = stack.output("databaseUrl")

    lose_data(stack, ("pgdata", "data"))
    stack.up({"database": "postgres"}, refresh=True)
    assert stack.notes() == ["startup"], "the redeployed database should start empty"
    # The redeployed backup container finds a recent backup: it must not dump the empty database over it.
    settled(stack)
    assert complete_backups(stack, "postgres") == sorted(before_loss)

    restore_seconds = restore_postgres(stack, url, backup)
    wait_for("backend /health after the restore", stack.healthy, HEALTHY_TIMEOUT)
    assert stack.notes() == [*expected, "startup"]
    record_result(
        f"RESULT backup mode=postgres rows={len(expected)} backup_seconds={backup_seconds:.2f} "
        f"restore_seconds={restore_seconds:.2f}"
    )


def test_sqlite_backup_and_restore(stack: Stack) -> None:
    """SQLite online backup, data volume lost, redeploy, file copied back: every row back."""
    stack.up()
    stack.post_notes([f"sqlite-row-{i}" for i in range(ROWS)])
    expected = stack.notes()
    backup, backup_seconds = take_backup(stack, "sqlite")
    before_loss = complete_backups(stack, "sqlite")

    lose_data(stack, ("data",))
    stack.up(refresh=True)
    assert stack.notes() == ["startup"], "the redeployed database should start empty"
    settled(stack)
    assert complete_backups(stack, "sqlite") == sorted(before_loss), "no backup of the empty database"

    restore_seconds = restore_sqlite(stack, BACKEND_IMAGE, backup)
    wait_for("backend /health after the restore", stack.healthy, HEALTHY_TIMEOUT)
    assert stack.notes() == [*expected, "startup"]
    record_result(
        f"RESULT backup mode=sqlite rows={len(expected)} backup_seconds={backup_seconds:.2f} "
        f"restore_seconds={restore_seconds:.2f}"
    )


def test_backup_keep_prunes_old_files(stack: Stack) -> None:
    """With backupKeep=2, after four backups exactly the two newest complete files remain."""
    keep = 2
    stack.up({"backupKeep": keep})
    taken = [take_backup(stack, "sqlite")[0] for _ in range(3)]

    wait_for("pruning to keep 2", lambda: len(complete_backups(stack, "sqlite")) == keep, BACKUP_TIMEOUT)
    assert complete_backups(stack, "sqlite") == sorted(taken[-keep:])
    assert not [name for name in backup_files(stack) if name.endswith(".partial")]

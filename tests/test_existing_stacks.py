"""Stacks deployed by an earlier version of this program keep every resource when the program changes.

`tests/fixtures/state-*.json` are states as the engine held them after `pulumi up` of the program before
the database mode became one object per mode (saved with `testkit.plan.State.to_json`). Running today's
program over them must plan no delete, no replacement and no refusal: a restructure of the code never
moves a user's data or secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testkit import plan as planning
from testkit.harness import run_program

FIXTURES = Path(__file__).resolve().parent / "fixtures"


# What today's program changes on such a stack, and why:
# - the schema gate runs once (a pre-upgrade backup, then the versionless database the release made is
#   stamped at its revision);
# - the backend's environment now names the PostgreSQL driver in DATABASE_URL (`postgresql+psycopg://`)
#   with a pool sized for one backend and, when `corsOrigins` is unset, the published URLs in
#   CORS_ORIGINS, and its healthcheck waits for /health in its first probe and then checks every 15 s,
#   so the backend container is replaced once;
# - the backup container's script gained the one-shot mode the gate's backup step uses (and removes a
#   failed copy), so it is replaced once; it takes no backup at restart when a recent one exists;
# - PostgreSQL's healthcheck now waits for the server inside its first probe (healthy within 0.2 s of
#   accepting connections instead of up to one interval later), so its container is replaced once, in
#   the same `up` as the backend; its data volume is untouched;
# - in SQLite mode the backup container also runs as root (the release's image runs as uid 1000, which
#   cannot write the backups volume);
# - in PostgreSQL mode the data move runs once after the gate (a stack that never had SQLite data has
#   nothing to move; one whose SQLite file has rows while PostgreSQL has data too is refused, untouched).
# Nothing else.
GATE = ["create schema-backup-container", "create schema-gate-container"]
BACKEND = "replace backend-container (envs, healthcheck)"
POSTGRES_HEALTHCHECK = "replace postgres-container (healthcheck)"
POSTGRES_GATE = [POSTGRES_HEALTHCHECK, *GATE, "create data-move-container", BACKEND]
POSTGRES_CHANGES = [*POSTGRES_GATE, "replace backup-container (entrypoints)"]
POSTGRES_NO_BACKUPS = POSTGRES_GATE
SQLITE_CHANGES = [*GATE, BACKEND, "replace backup-container (entrypoints, user)"]


@pytest.mark.parametrize(
    ("snapshot", "stack", "overrides", "expected"),
    [
        ("state-prod.json", "prod", {}, POSTGRES_CHANGES),
        ("state-embedded.json", "embedded", {}, SQLITE_CHANGES),
        (
            "state-dev-postgres-nobackup.json",
            "dev",
            {"database": "postgres", "backupEnabled": False},
            POSTGRES_NO_BACKUPS,
        ),
    ],
)
def test_existing_stack_keeps_every_resource(
    snapshot: str, stack: str, overrides: dict[str, Any], expected: list[str]
) -> None:
    """Same config, today's program: no delete, no refusal, only the replacements listed above."""
    state = planning.State.from_json((FIXTURES / snapshot).read_text())
    steps = planning.plan(state, run_program(stack, overrides, prior=state))
    assert steps.refusals == []
    assert steps.ops("delete", "forget") == []
    assert steps.summary() == expected

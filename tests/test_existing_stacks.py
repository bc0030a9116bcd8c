"""Stacks deployed by an earlier version of this program keep every resource and every secret.

`tests/fixtures/state-*.json` are states as the engine held them after `pulumi up` of the program before
the database mode became one object per mode (saved with `testkit.plan.State.to_json`), with the ids the
real providers gave (their keys' generators are `RandomBytes`, whose ids are the keys in base64). Today's
program first stops, touching nothing, and names the one command that takes the keys out of those ids;
after that command (`scripts/keys_out_of_ids.py`, run here on the state's export as on the CLI's), it must
plan no delete, no replacement and no refusal, and deploy the same keys: a new version never moves a
user's data or rotates a secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from components.secrets import LEGACY_COMMAND
from testkit import plan as planning
from testkit.harness import commit, run_program
from testkit.legacy import after_the_command

FIXTURES = Path(__file__).resolve().parent / "fixtures"


# What today's program changes on such a stack, and why:
# - the schema gate runs once (a pre-upgrade backup, then the versionless database the release made is
#   stamped at its revision);
# - the backend's environment now names the PostgreSQL driver in DATABASE_URL (`postgresql+psycopg://`)
#   with a pool sized for one backend and, when `corsOrigins` is unset, the published URLs in
#   CORS_ORIGINS, and its healthcheck waits for /health in its first probe and then checks every 15 s,
#   so the backend container is replaced once;
# - the backup container's script gained the one-shot mode the gate's backup step uses (and removes a
#   failed copy) and reaches it as a file (`uploads`, run by path or as `python -m`, with PYTHONPATH in
#   its environment in SQLite mode) instead of inside its command, so it is replaced once; it takes no
#   backup at restart when a recent one exists;
# - PostgreSQL's healthcheck now waits for the server inside its first probe (healthy within 0.2 s of
#   accepting connections instead of up to one interval later), so its container is replaced once, in
#   the same `up` as the backend; its data volume is untouched;
# - in SQLite mode the backup container also runs as root (the release's image runs as uid 1000, which
#   cannot write the backups volume);
# - in PostgreSQL mode the data move runs once after the gate (a stack that never had SQLite data has
#   nothing to move; one whose SQLite file has rows while PostgreSQL has data too is refused, untouched).
# - the release's steps run in one container (`release-steps`): the gate, the data move (PostgreSQL), the key
#   rotation and the first admin's seed (the release's own code, on a database with no user; these stacks
#   have their admin already, so it touches nothing); the backend waits for it;
# - every device reaches the app through the proxy, the one origin; the old-ports container takes over the
#   host ports 8000 and 3000 once the backend and the frontend, which published them, are replaced without
#   them; the frontend starts through the origin rewrite, after the check of its image;
# - in PostgreSQL mode the backend image's driver comes from the driver step (the image's own, here) and
#   its volume is mounted into the backend;
# - the keys come from the stack's config (the command put the values in use there); the secrets gain their
#   seed (for a later rotation, unused while config sets both keys), the first admin's password (not
#   exported on these stacks: their admin was made by the release) and the record of the values in use;
# - the backend runs through `backend_serve.py` (uploaded), serving once the release's steps wrote its token;
#   on these stacks (their app network is there) it is created after the steps, as before.
# Nothing else.
SECRETS = ["create secrets-key-seed", "create secrets-admin-password", "create secrets-in-use"]
GATE = ["create schema-backup-container", "create release-steps-container"]
PROXY = ["create proxy-image", "create proxy-data", "create proxy-container", "create old-ports-container"]
FRONTEND = ["create frontend-check-container", "replace frontend-container (entrypoints, envs, ports, uploads)"]
DRIVER = ["create driver-volume", "create driver-step-container"]
BACKEND = "replace backend-container (entrypoints, envs, ports, uploads, healthcheck)"
POSTGRES_BACKEND = "replace backend-container (entrypoints, envs, ports, uploads, volumes, healthcheck)"
# The socket volume (the role step's way in) is new: the server is replaced once, as for its healthcheck.
POSTGRES_SERVER = "replace postgres-container (volumes, healthcheck)"
POSTGRES_GATE = [
    "create pgdata-check-container",
    "create postgres-pgsocket",
    POSTGRES_SERVER,
    "create postgres-role-container",
    *DRIVER,
    *GATE,
    POSTGRES_BACKEND,
]
POSTGRES_NO_BACKUPS = [*SECRETS, *POSTGRES_GATE, *FRONTEND, *PROXY]
POSTGRES_CHANGES = [*POSTGRES_NO_BACKUPS, "replace backup-container (entrypoints, envs, uploads, healthcheck)"]
SQLITE_CHANGES = [
    *SECRETS,
    *GATE,
    BACKEND,
    *FRONTEND,
    *PROXY,
    "replace backup-container (entrypoints, envs, uploads, user, healthcheck)",
]


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
    """Same config, today's program: stopped first; after the command no delete, no refusal, the same keys."""
    state = planning.State.from_json((FIXTURES / snapshot).read_text())
    with pytest.raises(Exception, match=LEGACY_COMMAND) as stopped:
        run_program(stack, overrides, prior=state)
    declared = stopped.value.registrations  # type: ignore[attr-defined]
    assert not [r for r in declared if r.type.startswith("docker:") and r.urn not in state.resources], (
        "nothing new declared before the stop"
    )

    migrated, keys = after_the_command(state, stack)
    deployment = run_program(stack, overrides, keys, prior=migrated)
    steps = planning.plan(migrated, deployment)
    assert steps.refusals == []
    assert steps.ops("delete", "forget") == []
    # Sorted: resources register from several threads, in no fixed order.
    assert sorted(steps.summary()) == sorted(expected)
    backend = deployment.container("backend")
    assert deployment.container("release-steps").urn in backend.dependencies, "created after the steps"
    before = next(r for r in state.resources.values() if r.name == "backend-container").inputs["envs"]
    after = deployment.container("backend").plain("envs")
    for name in ("ENCRYPTION_KEY", "JWT_SECRET_KEY", "DATABASE_URL"):
        old = next(e for e in before if e.startswith(f"{name}="))
        assert next(e for e in after if e.startswith(f"{name}=")).split("?")[0].replace("+psycopg", "") == old, name


def test_a_stack_of_the_version_before_the_old_ports_container() -> None:
    """A stack of 6b313b0, whose proxy published 80, 3000 and 8000: one `up` moves 3000 and 8000 out of it.

    The proxy is replaced once, without them, and the old ports get their container, after the proxy, the
    backend and the frontend (whichever held them); the release's steps once, for their modules uploaded as
    one zip (their PYTHONPATH names it) and the token they write; the pre-upgrade backup with them; the
    backend once, to run through `backend_serve.py`, created after the steps (its network is there); nothing
    else changes, and the next `up` plans nothing.
    """
    state = planning.State.from_json((FIXTURES / "state-embedded-6b313b0.json").read_text())
    deployment = run_program("embedded", prior=state)
    steps = planning.plan(state, deployment)
    assert steps.refusals == []
    assert sorted(steps.summary()) == [
        "create old-ports-container",
        "replace backend-container (entrypoints, envs, uploads)",
        "replace proxy-container (ports, uploads)",
        "replace release-steps-container (envs, uploads)",
        "replace schema-backup-container (envs)",
    ]
    assert deployment.container("release-steps").urn in deployment.container("backend").dependencies
    old_ports = deployment.container("old-ports").dependencies
    assert {deployment.container(role).urn for role in ("proxy", "backend", "frontend")} <= set(old_ports)
    assert planning.plan(commit(deployment, prior=state), run_program("embedded", prior=state)).summary() == []

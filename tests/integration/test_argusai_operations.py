"""Operating the real ArgusAI release: restore from a backup, SQLite-only features on PostgreSQL, a failed start.

Runs the release image built from its source (`argusai-test/argusai-backend:c5efc85`) with the schema gate
on, as an operator would meet it:

- the README's SQLite restore procedure, run verbatim through the `docker` CLI on a release database
  (Alembic version, FTS5 index and triggers, file ownership all come back usable);
- what the release's SQLite-only SQL does on PostgreSQL: full-text search (the FTS5 table `events_fts`),
  the database size (`PRAGMA page_count`) and hourly AI cost trends (`strftime`);
- a release whose migration passes the gate but whose backend then never starts ("after the switch"):
  the data is intact and the next `pulumi up` with a working image restores service.
"""

from __future__ import annotations

import json
import time
import urllib.error
from collections.abc import Callable
from typing import Any

import docker
import pytest

from components.backend import APP_DIR
from testkit.applier import ApplyError
from testkit.images.derive import derive_image
from testkit.images.recipes import ARGUSAI_BACKEND

from .conftest import Stack, record_result, wait_for
from .test_argusai_deploy import (
    CAMERA,
    HEALTHY_TIMEOUT,
    RELEASE,
    RELEASE_HEAD,
    UPGRADE_REVISION,
    admin_password,
    api,
    login,
    records,
    release_with_migration,
    version,
)
from .test_engine_backups import restore_sqlite, take_backup

pytestmark = pytest.mark.argusai

#: Migration 008's FTS5 index over events.description and the triggers that keep it in step.
FTS_OBJECTS = {("table", "events_fts"), ("trigger", "events_ai"), ("trigger", "events_au"), ("trigger", "events_ad")}
#: Read in the backend container: the SQLite file's owner and its FTS5 objects (plain sqlite3, read-only).
SQLITE_FILE_PROBE = (
    "import json, os, sqlite3; path = '/app/data/app.db'; "
    "db = sqlite3.connect('file:' + path + '?mode=ro', uri=True); "
    "names = db.execute(\"SELECT type, name FROM sqlite_master WHERE name LIKE 'events_%'\").fetchall(); "
    "print(json.dumps({'uid': os.stat(path).st_uid, 'objects': names}))"
)
#: Run in a one-off container of the release image on the data volume while no backend serves it: the
#: Alembic revision, whether the upgrade's table exists, the user names, and the schema gate's log.
OFFLINE_PROBE = (
    "import json, sqlite3; db = sqlite3.connect('file:/app/data/app.db?mode=ro', uri=True); "
    "tables = [r[0] for r in db.execute(\"SELECT name FROM sqlite_master WHERE type = 'table'\")]; "
    "print(json.dumps({"
    "'revision': db.execute('SELECT version_num FROM alembic_version').fetchall(), "
    "'gate_probe': 'gate_probe' in tables, "
    "'users': sorted(r[0] for r in db.execute('SELECT username FROM users')), "
    "'gate_log': open('/app/data/schema-gate/release-steps.log').read()}))"
)
#: The derived release's backend never starts: its command exits at once (the gate runs its own entry point).
# A release whose app fails at import: the program runs the release's `main:app` (not the image's CMD).
FAILING_MAIN = b'raise SystemExit("this release does not start")\n'
FAILING_WAIT_SECONDS = 30
SEARCH_WORD = "porch"
EVENTS = ("A person waits at the porch door", "A car parks in the driveway")
#: Plain event-list calls after a failed search on PostgreSQL (a pooled connection left in an aborted
#: transaction would fail the next ones).
AFTER_FAILURE_CALLS = 3
LOGIN_INTERVAL_SECONDS = 1.1


def answer(stack: Stack, path: str, token: str, body: Any = None, method: str = "GET") -> tuple[int, Any]:
    """Call the release's API; (status, JSON body) also for an error status (which `api` raises)."""
    try:
        status, payload, _ = api(stack, method, path, body, token)
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")
    return status, payload


def admin_session(stack: Stack) -> tuple[str, str]:
    """Wait for the release to serve, read the admin password the README's way, log in: (password, token)."""
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    password = admin_password(stack)
    status, token, _ = login(stack, password)
    assert status == 200
    return password, token


def login_again(stack: Stack, password: str) -> str:
    """Log in once more, a second apart from any earlier login (see `login`); return the token."""
    time.sleep(LOGIN_INTERVAL_SECONDS)
    status, token, _ = login(stack, password)
    assert status == 200
    return token


def create_user(stack: Stack, token: str, username: str) -> None:
    """Create an operator through the API."""
    assert api(stack, "POST", "/users", {"username": username, "role": "operator"}, token)[0] == 201


def backend_log_lines(stack: Stack, *needles: str) -> list[str]:
    """The backend's log lines (`docker logs`) that contain any of `needles`."""
    log = stack.container("backend").logs().decode(errors="replace")
    return [line.strip() for line in log.splitlines() if any(needle in line for needle in needles)]


def backend_errors(stack: Stack, needle: str) -> list[str]:
    """The messages of the backend's ERROR log records (the release logs JSON lines) that contain `needle`."""
    messages = []
    for line in backend_log_lines(stack, needle):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") == "ERROR":
            messages.append(" ".join(str(record.get("message", "")).split()))
    return messages


def test_sqlite_backup_and_restore_of_the_release_schema(stack: Stack) -> None:
    """SIGHUP backup of a release database, README restore: rows as backed up, at head, FTS5 kept, writable."""
    stack.up(RELEASE)
    password, token = admin_session(stack)
    create_user(stack, token, "operator1")
    assert api(stack, "POST", "/cameras", CAMERA, token)[0] == 201
    at_backup = records(stack, token)
    assert at_backup == (["admin", "operator1"], ["Porch"])

    backup, _ = take_backup(stack, "sqlite")
    create_user(stack, token, "operator2")  # after the backup: the restore must take it away
    assert records(stack, token) == (["admin", "operator1", "operator2"], ["Porch"])

    restore_seconds = restore_sqlite(stack, RELEASE["backendImage"], backup)
    wait_for("the release's /health after the restore", stack.healthy, HEALTHY_TIMEOUT)
    token = login_again(stack, password)  # the admin of the backup, same password
    assert records(stack, token) == at_backup
    assert version(stack) == (RELEASE_HEAD, False)

    code, out = stack.exec("backend", ["python", "-c", SQLITE_FILE_PROBE])
    assert code == 0, out[-2000:]
    restored = json.loads(out.strip().splitlines()[-1])
    assert FTS_OBJECTS <= {tuple(item) for item in restored["objects"]}, restored["objects"]
    assert restored["uid"] == 1000  # the release's appuser: the backend can write the restored file
    create_user(stack, token, "operator3")
    assert records(stack, token) == (["admin", "operator1", "operator3"], ["Porch"])
    record_result(f"RESULT argusai sqlite restore: {backup} restored in {restore_seconds:.2f}s, at head, FTS5 kept")


def sqlite_only_calls(stack: Stack, config: dict[str, Any]) -> dict[str, Any]:
    """Deploy `config`, add a camera and two events, then call what runs SQLite-only SQL, and the event list.

    Returns what each call answered: status and (for 200) the event descriptions, else the body.
    """
    stack.up(config)
    _, token = admin_session(stack)
    status, camera, _ = api(stack, "POST", "/cameras", CAMERA, token)
    assert status == 201
    for description in EVENTS:
        event = {
            "camera_id": camera["id"],
            "timestamp": "2026-07-01T12:00:00Z",
            "description": description,
            "confidence": 90,
            "objects_detected": ["person"],
        }
        status, body = answer(stack, "/events", token, event, method="POST")
        assert status == 201, body

    def listed(path: str) -> tuple[int, Any]:
        status, body = answer(stack, path, token)
        if status == 200:
            return status, sorted(e["description"] for e in body["events"])
        return status, body

    return {
        "search": listed(f"/events?search={SEARCH_WORD}"),
        "search_query": listed(f"/events?search_query={SEARCH_WORD}"),
        "after": [listed("/events") for _ in range(AFTER_FAILURE_CALLS)],
        # The release's other SQLite-only SQL: `PRAGMA page_count` (database size) and `strftime` (hourly
        # AI cost buckets).
        "storage": answer(stack, "/system/storage", token),
        "cost_trends_hour": answer(stack, "/system/ai-cost-trends?bucket=hour", token),
        "cost_trends_day": answer(stack, "/system/ai-cost-trends?bucket=day", token),
    }


def statuses(answers: dict[str, Any]) -> str:
    """One line of what each call answered (its status), for the test report."""
    parts = []
    for name, value in answers.items():
        status = "/".join(str(a[0]) for a in value) if name == "after" else str(value[0])
        parts.append(f"{name} {status}")
    return ", ".join(parts)


def test_sqlite_only_features_of_the_release(make_stack: Callable[[], Stack]) -> None:
    """Full-text search and hourly cost trends fail on PostgreSQL, the database size reads 0; lists answer.

    The release's parameter is `search_query`: `search=` is not a parameter of `GET /events` and is ignored
    (every event is listed). `search_query` reads the FTS5 table `events_fts`, which exists only in SQLite.
    """
    everything = sorted(EVENTS)
    porch = [e for e in EVENTS if SEARCH_WORD in e]

    sqlite = make_stack()
    on_sqlite = sqlite_only_calls(sqlite, RELEASE)
    record_result(f"RESULT argusai sqlite-only features on sqlite: {statuses(on_sqlite)}")
    assert on_sqlite["search"] == (200, everything)  # not a filter: ignored
    assert on_sqlite["search_query"] == (200, porch)  # the FTS5 index, filled by the trigger events_ai
    assert on_sqlite["after"] == [(200, everything)] * AFTER_FAILURE_CALLS
    assert on_sqlite["storage"][0] == 200
    assert on_sqlite["storage"][1]["database_mb"] > 0
    assert on_sqlite["cost_trends_hour"][0] == on_sqlite["cost_trends_day"][0] == 200
    sqlite.cleanup()

    postgres = make_stack()
    on_postgres = sqlite_only_calls(postgres, {"database": "postgres", **RELEASE})
    errors = backend_errors(postgres, "Failed to list events")
    record_result(f"RESULT argusai sqlite-only features on postgres: {statuses(on_postgres)}")
    assert on_postgres["search"] == (200, everything)
    assert on_postgres["search_query"] == (500, {"detail": "Failed to list events"})
    # The failed query does not poison the pool: the session is closed (rolled back) after the request.
    assert on_postgres["after"] == [(200, everything)] * AFTER_FAILURE_CALLS
    # The database size is read with SQLite's PRAGMA page_count: on PostgreSQL the release reports 0 MB.
    assert on_postgres["storage"][0] == 200
    assert on_postgres["storage"][1]["database_mb"] == 0
    # Hourly AI cost buckets use SQLite's strftime(): a 500 on PostgreSQL; daily ones (date()) work.
    assert on_postgres["cost_trends_hour"][0] == 500
    assert on_postgres["cost_trends_day"][0] == 200
    # PostgreSQL rejects FTS5's MATCH operator before it even looks for the table.
    assert len(errors) == 1, errors
    assert errors[0].startswith(
        'Failed to list events: (psycopg.errors.SyntaxError) syntax error at or near "MATCH"'
    ), errors
    assert "[SQL: SELECT id FROM events_fts WHERE description MATCH %(query)s]" in errors[0]


def test_a_release_that_fails_after_its_migration_is_restored_by_up(
    stack: Stack, engine: docker.DockerClient, derived: list[str]
) -> None:
    """The gate migrates, then the new backend never starts: data intact, the next `up` restores service."""
    stack.up(RELEASE)
    password, token = admin_session(stack)
    create_user(stack, token, "operator1")

    working = release_with_migration(
        engine, 'op.create_table("gate_probe", sa.Column("id", sa.Integer, primary_key=True))'
    )
    derived.append(working)
    failing = derive_image(
        engine,
        working,
        "fails-to-start",
        files=(APP_DIR, {"main.py": FAILING_MAIN}),
        repository=ARGUSAI_BACKEND.repository,
    )
    derived.append(failing)

    deployment = stack.program({**RELEASE, "backendImage": failing})
    deployment.container("backend").inputs["waitTimeout"] = FAILING_WAIT_SECONDS
    with pytest.raises(ApplyError, match="failed to be in healthy state"):
        stack.apply(deployment)
    assert not stack.healthy()
    assert backend_log_lines(stack, "this release does not start"), "the failing release did not run"

    # After the switch: the gate migrated the database, and every row is still there.
    code, out = stack.oneoff(
        RELEASE["backendImage"],
        ["python", "-c", OFFLINE_PROBE],
        volumes={stack.physical("data"): {"bind": "/app/data", "mode": "rw"}},
    )
    assert code == 0, out[-2000:]
    offline = json.loads(out.strip().splitlines()[-1])
    assert offline["revision"] == [[UPGRADE_REVISION]]
    assert offline["gate_probe"] is True
    assert offline["users"] == ["admin", "operator1"]
    summary = f"schema-gate: sqlite versioned -> upgraded {RELEASE_HEAD} -> head (rev {UPGRADE_REVISION})"
    assert summary in offline["gate_log"]

    stack.up({**RELEASE, "backendImage": working})
    wait_for("the working upgrade's /health", stack.healthy, HEALTHY_TIMEOUT)
    token = login_again(stack, password)  # the same admin: nothing was re-created
    assert records(stack, token)[0] == ["admin", "operator1"]
    assert version(stack) == (UPGRADE_REVISION, True)
    record_result("RESULT argusai failed start after the gate: data intact at the new head; next up serves it")

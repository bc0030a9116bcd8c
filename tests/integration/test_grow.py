"""Growing past SQLite with the real release: the data moves into PostgreSQL, or a server kept elsewhere.

Each test starts on SQLite with data made through the release's API (users, a camera whose RTSP password
the release encrypts, an event, a setting) plus rows in every model table (`testkit.release_rows`), then
changes one config key and runs `up`, as an operator would.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass

import docker
import pytest

from testkit import release_rows
from testkit.applier import ApplyError
from testkit.elsewhere import ElsewhereServer, start_elsewhere
from testkit.images.recipes import ARGUSAI_BACKEND, POSTGRES

from .conftest import NAME_PREFIX, ROOT, Stack, record_result, wait_for
from .test_argusai_deploy import CAMERA, HEALTHY_TIMEOUT, RELEASE, admin_password, api, login
from .test_engine_backups import take_backup

pytestmark = [pytest.mark.grow, pytest.mark.argusai]

POSTGRES_MODE = {**RELEASE, "database": "postgres"}
STEPS_DIR = "/backups/steps"
MOVE_REPORT = f"{STEPS_DIR}/data-move.report"
MOVE_BACK = ROOT / "scripts" / "move-to-sqlite.sh"
COMMAND_TIMEOUT = 600
# Counted in the backend container through the release's own metadata and driver: rows per model table.
COUNTS = (
    "import json, os, sqlalchemy as sa, app.models\n"
    "from app.core.database import Base\n"
    "e = sa.create_engine(os.environ['DATABASE_URL'])\n"
    "with e.connect() as c:\n"
    "    print(json.dumps({t.name: c.execute(sa.select(sa.func.count()).select_from(t)).scalar()"
    " for t in Base.metadata.sorted_tables}))\n"
)
USER_NAMES = (
    "import json, app.models\n"
    "from app.core.database import SessionLocal\n"
    "from app.models.user import User\n"
    "with SessionLocal() as s:\n"
    "    print(json.dumps([u.username for u in s.query(User)]))\n"
)
# The camera's RTSP password as the backend decrypts it with its ENCRYPTION_KEY.
DECRYPT = (
    "import app.models\n"
    "from app.core.database import SessionLocal\n"
    "from app.models.camera import Camera\n"
    "from app.utils.encryption import decrypt_password\n"
    "with SessionLocal() as s:\n"
    "    print(decrypt_password(s.query(Camera).filter_by(name='Porch').one().password))\n"
)
EVENT_TEXT = "Person at the porch carrying a parcel"
SYSTEM_NAME = "Grown past SQLite"
# A camera name longer than its VARCHAR(100): SQLite stores it, PostgreSQL refuses it in the middle of a copy.
TOO_LONG_SQLITE = (
    "import sqlite3\n"
    "c = sqlite3.connect('/app/data/app.db')\n"
    "c.execute({sql!r}, ('x' * 101,))\n"
    "assert c.total_changes, 'no row changed'\n"
    "c.commit()\n"
)
TAKE_WRITE_LOCK = (
    "import sqlite3\n"
    "c = sqlite3.connect('/app/data/app.db', timeout=5, isolation_level=None)\n"
    "c.execute('BEGIN IMMEDIATE')\n"
    "c.execute('ROLLBACK')\n"
)
SECOND_CAMERA = "Garage"  # the camera MAKE_TOO_LONG lengthens
MAKE_TOO_LONG = TOO_LONG_SQLITE.format(sql="UPDATE cameras SET name = ? WHERE name = 'Garage'")
SHORTEN = TOO_LONG_SQLITE.format(sql="UPDATE cameras SET name = 'shortened' WHERE name = ?")


def in_backend(stack: Stack, script: str) -> str:
    """Run Python in the backend container (the release's venv, its DATABASE_URL); return the last line."""
    code, out = stack.exec("backend", ["python", "-c", script])
    assert code == 0, out[-3000:]
    return out.strip().splitlines()[-1]


def counts(stack: Stack) -> dict[str, int]:
    """Rows per model table in the database the backend uses."""
    return dict(json.loads(in_backend(stack, COUNTS)))


def sqlite_digest(stack: Stack) -> str:
    """SHA-256 of the SQLite file, read in the backend container (the data volume is mounted in every mode)."""
    code, out = stack.exec("backend", ["sha256sum", "/app/data/app.db"])
    assert code == 0, out
    return out.split()[0]


def backups_file(stack: Stack, path: str) -> str:
    """A file of the backups volume (a step's log or report), read in a throwaway container."""
    code, out = stack.oneoff(
        POSTGRES.tag, ["cat", path], volumes={stack.physical("backups"): {"bind": "/backups", "mode": "ro"}}
    )
    assert code == 0, out
    return out


def move_report(stack: Stack) -> str:
    """The data move's report."""
    return backups_file(stack, MOVE_REPORT)


def step_log(stack: Stack, role: str) -> str:
    """What a failed step said: its log on the backups volume (the container is removed when it fails)."""
    return backups_file(stack, f"{STEPS_DIR}/{role}.log")


def sqlite_oneoff(stack: Stack, script: str) -> str:
    """Run Python against the stack's SQLite file in a throwaway container of the release (its user)."""
    code, out = stack.oneoff(
        ARGUSAI_BACKEND.tag,
        ["python", "-c", script],
        volumes={stack.physical("data"): {"bind": "/app/data", "mode": "rw"}},
        environment={"DATABASE_URL": "sqlite:////app/data/app.db", **keys(stack)},
    )
    assert code == 0, out[-3000:]
    return out


def keys(stack: Stack) -> dict[str, str]:
    """The backend's ENCRYPTION_KEY and JWT_SECRET_KEY (the release's settings need them to import)."""
    env = dict(e.split("=", 1) for e in stack.container("backend").attrs["Config"]["Env"])
    return {name: env[name] for name in ("ENCRYPTION_KEY", "JWT_SECRET_KEY")}


@dataclass(frozen=True)
class Made:
    """What the operator made through the API on SQLite, and the row counts after the filler."""

    password: str
    """The first-start admin password."""
    camera_id: str
    event_id: str
    counts: dict[str, int]
    """Rows per model table."""


def start_on_sqlite_with_data(stack: Stack, *, every_table: bool = True) -> Made:
    """The release on SQLite; data through the API and (`every_table`) rows in every model table.

    The filler's rows hold what the release itself cannot read back (text that is not UTF-8): the release
    on SQLite fails to start on such a file, so a test that goes back to the same file leaves them out.
    """
    stack.up(RELEASE)
    wait_for("the release's /health on SQLite", stack.healthy, HEALTHY_TIMEOUT)
    password = admin_password(stack)
    status, token, _ = login(stack, password)
    assert status == 200
    assert api(stack, "POST", "/users", {"username": "operator1", "role": "operator"}, token)[0] == 201
    status, camera, _ = api(stack, "POST", "/cameras", CAMERA, token)
    assert status == 201
    event = {
        "camera_id": camera["id"],
        "timestamp": "2026-11-30T18:45:00Z",
        "description": EVENT_TEXT,
        "confidence": 87,
        "objects_detected": ["person", "package"],
    }
    status, made, _ = api(stack, "POST", "/events", event, token)
    assert status == 201
    assert api(stack, "PUT", "/system/settings", {"system_name": SYSTEM_NAME}, token)[0] == 200
    if every_table:
        filled = release_rows.parse_counts(sqlite_oneoff(stack, release_rows.SCRIPT))
        empty = sorted(table for table, rows in filled.items() if rows == 0)
        assert empty == [], f"model tables left without rows: {empty}"
    else:
        assert api(stack, "POST", "/cameras", {**CAMERA, "name": SECOND_CAMERA}, token)[0] == 201
    return Made(password, camera["id"], made["id"], counts(stack))


def user_names(stack: Stack) -> set[str]:
    """Every user name in the backend's database, read through the release's models.

    (The API's user and camera lists refuse the filler's rows: their values are valid for the database
    but not for the API's response schemas. The API is read per record instead.)
    """
    return set(json.loads(in_backend(stack, USER_NAMES)))


def assert_same_data(stack: Stack, made: Made) -> str:
    """What the operator sees after the move: same admin password, users, camera, event, setting."""
    time.sleep(1)  # the release on PostgreSQL answers two logins of one user in one second with a 500
    status, token, _ = login(stack, made.password)
    assert status == 200, "the first-start admin password no longer works"
    assert {"admin", "operator1"} <= user_names(stack)
    status, camera, _ = api(stack, "GET", f"/cameras/{made.camera_id}", token=token)
    assert (status, camera["name"]) == (200, CAMERA["name"])
    status, event, _ = api(stack, "GET", f"/events/{made.event_id}", token=token)
    assert (status, event["description"], event["objects_detected"]) == (200, EVENT_TEXT, ["person", "package"])
    status, settings, _ = api(stack, "GET", "/system/settings", token=token)
    assert (status, settings["system_name"]) == (200, SYSTEM_NAME)
    assert in_backend(stack, DECRYPT) == CAMERA["password"], "the camera's stored password no longer decrypts"
    return token


def test_sqlite_to_postgres_moves_every_row_once_and_the_documented_command_moves_it_back(stack: Stack) -> None:
    """One key, one `up`: every row in PostgreSQL; a second run copies nothing; back to SQLite by the README."""
    made = start_on_sqlite_with_data(stack)
    before = made.counts
    digest = sqlite_digest(stack)

    started = time.monotonic()
    stack.up(POSTGRES_MODE)
    up_seconds = time.monotonic() - started
    wait_for("the release's /health on PostgreSQL", stack.healthy, HEALTHY_TIMEOUT)
    moved = counts(stack)
    assert moved == before, {t: (before[t], moved.get(t)) for t in before if before[t] != moved.get(t)}
    report = move_report(stack)
    assert "data-move: moved" in report, report
    assert sqlite_digest(stack) == digest, "the move changed the SQLite file"
    # The write lock went once the new backend answered: a writer gets it (and writes nothing).
    sqlite_oneoff(stack, TAKE_WRITE_LOCK)
    token = assert_same_data(stack, made)

    # The step again (as a new backend image would run it): nothing is copied twice.
    stack.applier.replace(stack.state, stack.deployment, "release-steps")
    assert "already moved" in move_report(stack)
    assert counts(stack)["cameras"] == before["cameras"]
    record_result(
        f"RESULT grow sqlite->postgres: {sum(before.values())} rows in {len(before)} tables moved, "
        f"up {up_seconds:.1f} s; {report.strip().splitlines()[-1]}"
    )

    # Made on PostgreSQL, then moved back with the README's command and one config change.
    assert api(stack, "POST", "/users", {"username": "made_on_postgres", "role": "viewer"}, token)[0] == 201
    done = subprocess.run(  # noqa: S603 - the README's own command
        ["bash", str(MOVE_BACK), f"{NAME_PREFIX}-{stack.name}"],  # noqa: S607 - bash from PATH, as operators run it
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    stack.up(RELEASE)
    wait_for("the release's /health back on SQLite", stack.healthy, HEALTHY_TIMEOUT)
    assert "made_on_postgres" in user_names(stack)
    assert_same_data(stack, made)
    record_result(
        "RESULT grow postgres->sqlite: scripts/move-to-sqlite.sh, then `up`: the data made on PostgreSQL read back"
    )


def refused_switch(stack: Stack, reason: str) -> None:
    """The switch to PostgreSQL stops at the data move (its log says `reason`); the SQLite backend serves on."""
    serving = stack.container("backend").id
    with pytest.raises(ApplyError, match="release-steps"):
        stack.up(POSTGRES_MODE)
    said = step_log(stack, "release-steps")
    assert reason in said, said[-2000:]
    assert stack.container("backend").id == serving
    assert stack.healthy()


def test_a_failed_move_leaves_sqlite_serving_and_postgres_empty(stack: Stack) -> None:
    """A row PostgreSQL refuses mid-copy: `up` stops, the old backend serves and writes, no partial data."""
    made = start_on_sqlite_with_data(stack, every_table=False)
    sqlite_oneoff(stack, MAKE_TOO_LONG)
    refused_switch(stack, "cameras")
    status, token, _ = login(stack, made.password)
    assert status == 200
    # The lock is gone with the failed step: the old backend writes again.
    assert api(stack, "POST", "/users", {"username": "after_the_failure", "role": "viewer"}, token)[0] == 201
    code, out = stack.exec(
        "postgres", ["sh", "-c", 'psql -XAtq -U "$POSTGRES_USER" -d "$POSTGRES_DB" -c "SELECT count(*) FROM users"']
    )
    assert (code, out.strip()) == (0, "0"), out

    # Fixed in SQLite, the next `up` moves everything, the user made after the failure included.
    sqlite_oneoff(stack, SHORTEN)
    stack.up(POSTGRES_MODE)
    wait_for("the release's /health on PostgreSQL", stack.healthy, HEALTHY_TIMEOUT)
    assert_same_data(stack, made)
    assert "after_the_failure" in user_names(stack)

    # Back to SQLite by config alone: SQLite serves what it had; once it has changed, PostgreSQL (which
    # holds the moved data) is never overwritten or merged into: the next switch is refused.
    stack.up(RELEASE)
    wait_for("the release's /health on SQLite", stack.healthy, HEALTHY_TIMEOUT)
    time.sleep(1)
    status, token, _ = login(stack, made.password)
    assert api(stack, "POST", "/users", {"username": "only_in_sqlite", "role": "viewer"}, token)[0] == 201
    refused_switch(stack, "changed")
    record_result(
        "RESULT grow faults: a row refused mid-copy left SQLite serving, PostgreSQL empty; a changed SQLite refused"
    )


@pytest.fixture
def elsewhere(stack: Stack, engine: docker.DockerClient) -> ElsewhereServer:
    """A PostgreSQL server outside the stack, TLS on, reached by address and port (removed with the stack)."""
    return start_elsewhere(engine, POSTGRES.tag, stack.name, "elsewhere-" + stack.name + "-pw")


def test_move_into_a_server_kept_elsewhere_over_verified_tls(stack: Stack, elsewhere: ElsewhereServer) -> None:
    """SQLite -> external with verify-full: healthy, TLS in use, a backup and a restore, a wrong CA refused."""
    made = start_on_sqlite_with_data(stack)
    before = made.counts
    external = {**RELEASE, "database": "external", "databaseCaCert": elsewhere.certificates.ca}
    url = {"databaseUrl": elsewhere.url("verify-full")}
    stack.up(external, url)
    wait_for("the release's /health against the server elsewhere", stack.healthy, HEALTHY_TIMEOUT)
    assert counts(stack) == before
    assert_same_data(stack, made)
    roles = {
        c.labels.get("argusai.role")
        for c in stack.client.containers.list(filters={"label": f"argusai.stack={stack.name}"})
    }
    assert "postgres" not in roles
    for container in stack.client.containers.list(filters={"label": f"argusai.stack={stack.name}"}):
        assert stack.physical("pgdata") not in {m.get("Name") for m in container.attrs["Mounts"]}
    # The backend's connections to the server are encrypted.
    encrypted = elsewhere.psql(
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE ssl AND usename = 'elsewhere' "
        "AND client_addr IS NOT NULL"
    )
    assert int(encrypted) >= 1

    # A backup and the README's restore for a server kept elsewhere.
    dump, _ = take_backup(stack, "postgres")
    elsewhere.psql("INSERT INTO system_settings (key, value) VALUES ('after-backup', 'x')")
    restore = (
        f"docker stop {stack.physical('backend')} && "
        f"docker exec {stack.physical('backup')} sh -c 'pg_restore --clean --if-exists --single-transaction "
        f'--no-password --dbname="$PGDATABASE" /backups/{dump}\' && '
        f"docker start {stack.physical('backend')}"
    )
    done = subprocess.run(["sh", "-c", restore], capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)  # noqa: S603, S607
    assert done.returncode == 0, done.stderr[-3000:]
    assert elsewhere.psql("SELECT count(*) FROM system_settings WHERE key = 'after-backup'") == "0"
    wait_for("the release's /health after the restore", stack.healthy, HEALTHY_TIMEOUT)

    # A CA that did not sign the server's certificate: refused at the check, the backend keeps serving.
    serving = stack.container("backend").id
    with pytest.raises(ApplyError, match="pg-version"):
        stack.up({**external, "databaseCaCert": elsewhere.certificates.other_ca}, url)
    said = step_log(stack, "pg-version")
    assert "certificate verify failed" in said, said[-2000:]
    record_result(f"RESULT grow external, another CA: {said.strip().splitlines()[0][:160]}")
    assert stack.container("backend").id == serving
    assert stack.healthy()
    record_result(
        f"RESULT grow sqlite->external: verify-full against a server at {elsewhere.address}:{elsewhere.port}, "
        f"{sum(before.values())} rows, backup {dump} restored, another CA refused"
    )

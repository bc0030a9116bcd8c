"""The real ArgusAI backend deployed by the program: healthy on SQLite and PostgreSQL, admin login, backups.

Uses the release image built from its source (`argusai-test/argusai-backend:c5efc85`), with the settings
the program gives it (cookies for HTTP, CORS for the published URLs, generated keys), through the same
stateful applier as every other deploy.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import Any

import docker
import pytest

from testkit import release_api
from testkit.applier import ApplyError
from testkit.images.derive import derive_image
from testkit.images.recipes import ARGUSAI_BACKEND
from testkit.times import created_at, first_healthy_at

from .conftest import Stack, record_result, wait_for

pytestmark = pytest.mark.argusai

HEALTHY_TIMEOUT = 180
#: The release with the gate on (the test stacks' base turns it off for the stand-in backend).
RELEASE = {"backendImage": ARGUSAI_BACKEND.tag, "schemaGate": True}
#: The release's Alembic head (one head, 86 revisions).
RELEASE_HEAD = "a1b2c3d4e5f6"
# Read in the backend container: the database's Alembic revision, through the release's own driver.
VERSION_PROBE = (
    "import os, sqlalchemy as sa; e = sa.create_engine(os.environ['DATABASE_URL']); "
    "c = e.connect(); print(c.execute(sa.text('SELECT version_num FROM alembic_version')).scalar()); "
    "print(sa.inspect(c).has_table('gate_probe'))"
)
# A migration after the release's head: what a next release would add.
UPGRADE_MIGRATION = """
from alembic import op
import sqlalchemy as sa

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    {body}


def downgrade():
    pass
"""
UPGRADE_REVISION = "c0ffee000001"
MIGRATIONS_DIR = "/app/alembic/versions"
#: A camera the release accepts without connecting to anything (disabled); its RTSP password is encrypted.
CAMERA = {
    "name": "Porch",
    "type": "rtsp",
    "rtsp_url": "rtsp://127.0.0.1:8554/porch",
    "username": "cam",
    "password": "cam-secret",
    "is_enabled": False,
}
BACKUP_TIMEOUT = 120
COMMAND_TIMEOUT = 60


#: How the release prints the first admin's password when it makes the admin itself.
ADMIN_IN_LOG = re.compile(r"Username: admin\s+.*?Password: (\S+)", re.DOTALL)


def admin_password(stack: Stack) -> str:
    """The first admin's password, as an operator reads it.

    `pulumi stack output adminPassword --show-secrets`, when the program's `admin-seed` step gave it to the
    admin through the release's own code (the release then printed none in its log); without the release's
    steps (`schemaGate: false`) the release made the admin itself and printed its password in its log, read
    with the README's command.
    """
    output = stack.deployment.outputs["adminPassword"] if stack.deployment else None
    assert output is not None, "no adminPassword output"
    assert output.secret, "adminPassword is exported as a secret"
    logs = stack.container("backend").logs().decode(errors="replace")
    if output.value:
        assert "Username: admin" not in logs, "the release made (and printed) an admin of its own"
        return str(output.value)
    found = ADMIN_IN_LOG.search(logs)
    assert found, "no admin line in the backend's log"
    return found.group(1)


def version(stack: Stack) -> tuple[str, bool]:
    """(Alembic revision, whether the upgrade test's table exists), read inside the backend."""
    code, out = stack.exec("backend", ["python", "-c", VERSION_PROBE])
    assert code == 0, out[-2000:]
    revision, has_probe = out.strip().splitlines()[-2:]
    return revision, has_probe == "True"


def release_with_migration(engine: docker.DockerClient, body: str, label: str = "upgrade") -> str:
    """The release image plus one migration after its head; returns the new image's tag."""
    text = UPGRADE_MIGRATION.format(revision=UPGRADE_REVISION, down=RELEASE_HEAD, body=body).encode()
    return derive_image(
        engine,
        ARGUSAI_BACKEND.tag,
        label,
        files=(MIGRATIONS_DIR, {"999_gate_probe.py": text}),
        repository=ARGUSAI_BACKEND.repository,
    )


def api(stack: Stack, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, Any, str]:
    """Call the release's API on the published port; (status, JSON body, Set-Cookie header)."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(  # noqa: S310 - fixed http scheme on loopback
        f"http://127.0.0.1:{stack.backend_port}/api/v1{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers=headers,
        method=method,
    )
    with urllib.request.urlopen(request, timeout=COMMAND_TIMEOUT) as response:  # noqa: S310
        return response.status, json.loads(response.read() or b"null"), response.headers.get("Set-Cookie", "")


def login(stack: Stack, password: str) -> tuple[int, str, str]:
    """Log in as admin; (status, access token, Set-Cookie header). Through the kit's once-a-second gate."""
    status, body, cookie = release_api.login(f"http://127.0.0.1:{stack.backend_port}", password)
    return status, str(body["access_token"]) if status == release_api.HTTP_OK else "", cookie


def records(stack: Stack, token: str) -> tuple[list[str], list[str]]:
    """(user names, camera names) as the release's API lists them."""
    users = sorted(u["username"] for u in api(stack, "GET", "/users", token=token)[1])
    cameras = sorted(c["name"] for c in api(stack, "GET", "/cameras", token=token)[1])
    return users, cameras


def test_sqlite_deploy_of_the_release(stack: Stack) -> None:
    """Healthy on SQLite, the README's admin-password command finds the password, a backup is written."""
    stack.up(RELEASE)
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    assert len(admin_password(stack)) >= 16
    assert version(stack) == (RELEASE_HEAD, False)  # the gate brought the new database to the head

    def backed_up() -> bool:
        code, out = stack.exec("backup", ["sh", "-c", "ls /backups"])
        return code == 0 and ".sqlite3" in out

    wait_for("the first backup of the release's database", backed_up, BACKUP_TIMEOUT)
    log = stack.container("backup").logs().decode(errors="replace")
    assert "Permission denied" not in log

    # The release image's own HEALTHCHECK probes a server the backup container does not run (unhealthy
    # forever); its own says how the backups go.
    wait_for("the backup container healthy", lambda: stack.health("backup") == "healthy", BACKUP_TIMEOUT)
    record_result(
        "RESULT argusai sqlite deploy: healthy, admin password in the log, first backup written, "
        "backup container healthy"
    )


def test_postgres_deploy_of_the_release(stack: Stack) -> None:
    """PostgreSQL from nothing: healthy, admin login over HTTP (cookie not Secure), survives a replacement."""
    stack.up({"database": "postgres", **RELEASE})
    # The proxy in front starts beside the backend, not after the release's 20 s start (it holds requests
    # until the backend answers): created before the backend's first passing probe.
    assert created_at(stack.container("proxy").attrs) < first_healthy_at(stack.container("backend").attrs)
    # A new stack: the backend was created beside the release's steps (their PostgreSQL, backup and driver
    # too), imported the release meanwhile, and served only once they passed.
    steps, backend = stack.container("release-steps"), stack.container("backend")
    assert created_at(backend.attrs) < created_at(steps.attrs)
    assert first_healthy_at(steps.attrs) < first_healthy_at(backend.attrs)
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    assert version(stack) == (RELEASE_HEAD, False)  # create_all, then stamped: the chain cannot run here
    password = admin_password(stack)
    status, token, cookie = login(stack, password)
    assert status == 200
    # Served over plain HTTP: the program sets COOKIE_SECURE=false, COOKIE_SAMESITE=lax (the release's
    # defaults, Secure + None, would make browsers drop the session cookie).
    attributes = [part.strip() for part in cookie.lower().split(";")[1:]]
    assert "secure" not in attributes
    assert "samesite=lax" in attributes
    # Two logins one after the other, from the start of a second: the release would give the second the
    # first's token (its times in whole seconds) and answer 500; the kit's gate puts it in the next second.
    time.sleep(1 - time.time() % 1)
    assert [login(stack, password)[0] for _ in range(2)] == [200, 200]

    # Records through the real API: a user, and a camera whose RTSP password the release encrypts with
    # the generated ENCRYPTION_KEY (disabled: it connects to nothing).
    assert api(stack, "POST", "/users", {"username": "operator1", "role": "operator"}, token)[0] == 201
    assert api(stack, "POST", "/cameras", CAMERA, token)[0] == 201
    before = records(stack, token)
    assert before == (["admin", "operator1"], ["Porch"])

    replaced = stack.applier.replace(stack.state, stack.deployment, "backend")
    assert replaced.new_id != replaced.old_id
    wait_for("the release's /health after replacement", stack.healthy, HEALTHY_TIMEOUT)
    status, token, _ = login(stack, password)  # the admin user lives in PostgreSQL, not in the container
    assert status == 200
    assert records(stack, token) == before

    def dumped() -> bool:
        code, out = stack.exec("backup", ["sh", "-c", "ls /backups"])
        return code == 0 and ".dump" in out

    wait_for("the first pg_dump of the release's database", dumped, BACKUP_TIMEOUT)
    record_result("RESULT argusai postgres deploy: healthy, admin login, kept across a backend replacement")


def test_upgrade_goes_through_the_gate_and_a_failed_one_keeps_the_old_backend(
    stack: Stack, engine: docker.DockerClient, derived: list[str]
) -> None:
    """A release with one more migration: backup, migration, data kept. One whose migration fails: stopped."""
    stack.up(RELEASE)
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    password = admin_password(stack)

    broken = release_with_migration(engine, 'raise RuntimeError("this migration fails on purpose")')
    derived.append(broken)
    old_backend = stack.container("backend").id
    with pytest.raises(ApplyError, match="release-steps"):
        stack.up({**RELEASE, "backendImage": broken})
    # Stopped before the switch: the old backend still serves the same data, at the same revision.
    assert stack.container("backend").id == old_backend
    assert stack.healthy()
    assert login(stack, password)[0] == 200
    assert version(stack) == (RELEASE_HEAD, False)
    code, log = stack.exec("backend", ["cat", "/app/data/schema-gate/release-steps.log"])
    assert code == 0
    assert "this migration fails on purpose" in log

    fixed = release_with_migration(
        engine, 'op.create_table("gate_probe", sa.Column("id", sa.Integer, primary_key=True))'
    )
    derived.append(fixed)
    stack.up({**RELEASE, "backendImage": fixed})
    wait_for("the upgraded release's /health", stack.healthy, HEALTHY_TIMEOUT)
    # A stack that serves: the new backend was created only once the release's steps passed.
    steps = stack.container("release-steps").attrs
    assert first_healthy_at(steps) <= created_at(stack.container("backend").attrs)
    assert version(stack) == (UPGRADE_REVISION, True)
    assert login(stack, password)[0] == 200  # the data (the admin user) kept
    code, listing = stack.exec("backup", ["ls", "/backups"])
    assert code == 0
    assert "pre-upgrade-" in listing
    record_result("RESULT argusai upgrade: failed migration stopped with the old backend serving; next one applied")


def test_versionless_database_of_an_existing_stack_is_stamped(stack: Stack) -> None:
    """A stack the release's own create_all made (no gate yet) is stamped at head, not re-created."""
    stack.up({"backendImage": ARGUSAI_BACKEND.tag, "schemaGate": False})
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    password = admin_password(stack)
    stack.up(RELEASE)
    wait_for("the release's /health after the gate", stack.healthy, HEALTHY_TIMEOUT)
    assert version(stack) == (RELEASE_HEAD, False)
    assert login(stack, password)[0] == 200  # same admin, same password: nothing was re-created

"""The real ArgusAI backend deployed by the program: healthy on SQLite and PostgreSQL, admin login, backups.

Uses the release image built from its source (`argusai-test/argusai-backend:c5efc85`), with the settings
the program gives it (cookies for HTTP, CORS for the published URLs, generated keys), through the same
stateful applier as every other deploy.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

from testkit.images.build import ARGUSAI_BACKEND

from .conftest import Stack, record_result, wait_for

pytestmark = pytest.mark.argusai

HEALTHY_TIMEOUT = 180
BACKUP_TIMEOUT = 120
COMMAND_TIMEOUT = 60


def admin_password(stack: Stack) -> str:
    """The first admin password, read with the README's command as an operator runs it on the host."""
    done = subprocess.run(  # noqa: S603 - the README's own command, the name filled in by the test
        ["sh", "-c", f"docker logs {stack.physical('backend')} 2>&1 | grep -A1 'Username: admin'"],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines[0].strip().endswith("Username: admin"), "no admin line in the backend's log"
    assert lines[1].strip().startswith("Password: ")
    return lines[1].split(": ", 1)[1].strip()


def login(stack: Stack, password: str) -> tuple[int, str]:
    """POST the release's login as admin; (status, Set-Cookie header)."""
    request = urllib.request.Request(  # noqa: S310 - fixed http scheme on loopback
        f"http://127.0.0.1:{stack.backend_port}/api/v1/auth/login",
        data=json.dumps({"username": "admin", "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=COMMAND_TIMEOUT) as response:  # noqa: S310
        return response.status, response.headers.get("Set-Cookie", "")


def test_sqlite_deploy_of_the_release(stack: Stack) -> None:
    """Healthy on SQLite, the README's admin-password command finds the password, a backup is written."""
    stack.up({"backendImage": ARGUSAI_BACKEND.tag})
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    assert len(admin_password(stack)) >= 16

    def backed_up() -> bool:
        code, out = stack.exec("backup", ["sh", "-c", "ls /backups"])
        return code == 0 and ".sqlite3" in out

    wait_for("the first backup of the release's database", backed_up, BACKUP_TIMEOUT)
    log = stack.container("backup").logs().decode(errors="replace")
    assert "Permission denied" not in log
    record_result("RESULT argusai sqlite deploy: healthy, admin password in the log, first backup written")


def test_postgres_deploy_of_the_release(stack: Stack) -> None:
    """PostgreSQL from nothing: healthy, admin login over HTTP (cookie not Secure), survives a replacement."""
    stack.up({"database": "postgres", "backendImage": ARGUSAI_BACKEND.tag})
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    password = admin_password(stack)
    status, cookie = login(stack, password)
    assert status == 200
    # Served over plain HTTP: the program sets COOKIE_SECURE=false, COOKIE_SAMESITE=lax (the release's
    # defaults, Secure + None, would make browsers drop the session cookie).
    attributes = [part.strip() for part in cookie.lower().split(";")[1:]]
    assert "secure" not in attributes
    assert "samesite=lax" in attributes

    replaced = stack.applier.replace(stack.state, stack.deployment, "backend")
    assert replaced.new_id != replaced.old_id
    wait_for("the release's /health after replacement", stack.healthy, HEALTHY_TIMEOUT)
    assert login(stack, password)[0] == 200  # the admin user lives in PostgreSQL, not in the container

    def dumped() -> bool:
        code, out = stack.exec("backup", ["sh", "-c", "ls /backups"])
        return code == 0 and ".dump" in out

    wait_for("the first pg_dump of the release's database", dumped, BACKUP_TIMEOUT)
    record_result("RESULT argusai postgres deploy: healthy, admin login, kept across a backend replacement")

"""The real ArgusAI backend deployed by the program (SQLite mode): healthy, admin password findable, backed up.

Uses the release image built from its source (`argusai-test/argusai-backend:c5efc85`), with the settings
the program gives it (cookies for HTTP, CORS for the published URLs, generated keys), through the same
stateful applier as every other deploy.
"""

from __future__ import annotations

import subprocess

import pytest

from testkit.images.build import ARGUSAI_BACKEND

from .conftest import Stack, record_result, wait_for

pytestmark = pytest.mark.argusai

HEALTHY_TIMEOUT = 180
BACKUP_TIMEOUT = 120
COMMAND_TIMEOUT = 60


def test_sqlite_deploy_of_the_release(stack: Stack) -> None:
    """Healthy on SQLite, the README's admin-password command finds the password, a backup is written."""
    stack.up({"backendImage": ARGUSAI_BACKEND.tag})
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)

    # The README's command, as an operator runs it on the Docker host.
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
    assert len(lines[1].split(": ", 1)[1].strip()) >= 16

    def backed_up() -> bool:
        code, out = stack.exec("backup", ["sh", "-c", "ls /backups"])
        return code == 0 and ".sqlite3" in out

    wait_for("the first backup of the release's database", backed_up, BACKUP_TIMEOUT)
    log = stack.container("backup").logs().decode(errors="replace")
    assert "Permission denied" not in log
    record_result("RESULT argusai sqlite deploy: healthy, admin password in the log, first backup written")

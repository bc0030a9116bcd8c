"""Day two on the stack's own PostgreSQL, on the real release: a new password reaches the running server first.

- A new password, generated (`postgresPasswordRotation` raised) or supplied (`postgresPassword`), on a
  stack the client writes to all along: the role step sets it with `ALTER ROLE` on the running server
  (never restarted), then the backend and the backups get the new URL. Over the database network the old
  password is refused and the new one accepted; every acknowledged event is there; the longest gap in
  the writes (the backend's one restart) is printed.
- A rotation the server cannot take (its socket gone): `up` stops at the role step, and nothing else
  changed: the same backend serves with the old password. Once the server is itself again, the same
  `up` completes the rotation.
"""

from __future__ import annotations

import time
from urllib.parse import unquote, urlsplit

import pytest

from testkit.applier import ApplyError

from .conftest import Stack, record_result, wait_for
from .test_argusai_deploy import HEALTHY_TIMEOUT, RELEASE
from .test_engine_backups import backup_now, first_backup
from .test_load import RECOVERY_TIMEOUT, report_fault, resumed, writing

pytestmark = [pytest.mark.argusai, pytest.mark.daytwo]

POSTGRES = {"database": "postgres", **RELEASE}
NEW_PASSWORD = "rotated-on-day-two-1"  # noqa: S105 - a test stack's password
#: The server's socket: the role step's one way in.
SOCKET = "/var/run/postgresql/.s.PGSQL.5432"
REFUSED = "password authentication failed"


def _password(stack: Stack) -> str:
    """The password in the backend's URL, as `pulumi stack output databaseUrl --show-secrets` shows it."""
    return unquote(urlsplit(stack.output("databaseUrl")).password or "")


def _connects(stack: Stack, password: str) -> tuple[int, str]:
    """Run psql over the database network with `password`, in the server's image: (exit code, output)."""
    server = stack.container("postgres")
    network = next(iter(server.attrs["NetworkSettings"]["Networks"]))
    return stack.oneoff(
        server.image.id,
        ["psql", "-h", "postgres", "-U", "argusai", "-d", "argusai", "-tAc", "SELECT count(*) FROM events"],
        network=network,
        environment={"PGPASSWORD": password, "PGCONNECT_TIMEOUT": "10"},
    )


def _started(stack: Stack, role: str) -> tuple[str, str]:
    container = stack.container(role)
    return container.id, container.attrs["State"]["StartedAt"]


@pytest.mark.parametrize("how", ["generated", "supplied"])
def test_a_new_password_reaches_the_running_server_first_and_nothing_is_lost(stack: Stack, how: str) -> None:
    """The server keeps running; old password refused, new accepted; the backend and the backups follow."""
    stack.up(POSTGRES)
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    first_backup(stack, "postgres")
    old = _password(stack)
    server = _started(stack, "postgres")
    writer = writing(stack)
    began = time.monotonic()
    try:
        if how == "generated":
            stack.up({**POSTGRES, "postgresPasswordRotation": 1})
        else:
            stack.up(POSTGRES, {"postgresPassword": NEW_PASSWORD})
        up_seconds = time.monotonic() - began
        wait_for("the new backend's /health", stack.healthy, HEALTHY_TIMEOUT)
        wait_for("writes acknowledged again", resumed(writer, time.monotonic()), RECOVERY_TIMEOUT)
    finally:
        writer.stop()
    new = _password(stack)
    assert new != old
    if how == "supplied":
        assert new == NEW_PASSWORD
    assert _started(stack, "postgres") == server, "the server was not restarted"
    code, output = _connects(stack, old)
    assert code != 0
    assert REFUSED in output
    code, output = _connects(stack, new)
    assert code == 0, output
    assert int(output.strip()) >= len(writer.acknowledged)
    # The backups follow too: the new backup container dumps with the new password.
    _, backup_seconds = backup_now(stack, "postgres")
    report_fault(f"password-rotation-{how}", writer, began, time.monotonic())
    record_result(
        f"RESULT daytwo password rotation ({how}): up {up_seconds:.1f} s, server not restarted, old password "
        f"refused, new accepted, a backup with it in {backup_seconds:.1f} s"
    )


def test_a_rotation_the_server_cannot_take_changes_nothing_else(stack: Stack) -> None:
    """ALTER ROLE fails: `up` stops there, the same backend serves on the old password; then it completes."""
    config = {**POSTGRES, "backupEnabled": False}
    stack.up(config)
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    old = _password(stack)
    backend = _started(stack, "backend")
    # The server's socket gone: the role step cannot reach the server.
    code, output = stack.exec("postgres", ["rm", "-f", SOCKET])
    assert code == 0, output
    with pytest.raises(ApplyError, match="postgres-role"):
        stack.up(config, {"postgresPassword": NEW_PASSWORD})
    assert _started(stack, "backend") == backend, "the backend was not touched"
    assert stack.healthy()
    code, output = _connects(stack, old)
    assert code == 0, output
    assert REFUSED in _connects(stack, NEW_PASSWORD)[1]

    # The server restarted (its socket back), the same `up` completes the rotation.
    stack.container("postgres").restart(timeout=30)
    wait_for("the server healthy again", lambda: stack.health("postgres") == "healthy", HEALTHY_TIMEOUT)
    stack.up(config, {"postgresPassword": NEW_PASSWORD})
    wait_for("the new backend's /health", stack.healthy, HEALTHY_TIMEOUT)
    assert _connects(stack, NEW_PASSWORD)[0] == 0
    assert REFUSED in _connects(stack, old)[1]
    record_result("RESULT daytwo refused rotation: up stopped at postgres-role, the old backend serving; next up done")

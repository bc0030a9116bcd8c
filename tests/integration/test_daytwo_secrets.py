"""Day two on the real release: secrets that really rotate.

Three stacks, each taken through several operations in turn (a deploy of the release is the costly part):

- PostgreSQL, rotations in turn: a supplied password while the client writes (the role step sets it with
  `ALTER ROLE` on the running server, never restarted, then the backend and the backups get it; over the
  database network the old password is refused and the new one accepted; every acknowledged event is
  there); then by one `up` the JWT key (the old access token refused, the login's refresh token still
  gets a new one: what docs/secrets.md tells users) and the generated ENCRYPTION_KEY (a camera's password
  and the MQTT broker's, a table the release's own rotation script misses, set through the API before,
  are under the new key alone afterwards, and the release reads them); the key set back: refused by the
  data, nothing changed.
- SQLite: a supplied ENCRYPTION_KEY with the key in use as `encryptionKeyPrevious`: the same proof.
- Failures change nothing: a rotation the server cannot take (its socket gone) stops at the role step
  with the same backend serving on the old password, and once the server is itself again the generated
  password is rotated; then a major upgrade whose new volume is too small stops at `pg-upgrade` with 15
  serving, writable.
"""

from __future__ import annotations

import json
import time
from urllib.parse import unquote, urlsplit

import pytest
from cryptography.fernet import Fernet, InvalidToken

from components.naming import Naming
from testkit import release_api
from testkit.applier import ApplyError
from testkit.images.recipes import POSTGRES_17
from testkit.release_api import HTTP_CREATED, HTTP_OK, Session, call, post_event, sign_in

from .conftest import NAME_PREFIX, Stack, record_result, wait_for
from .test_argusai_deploy import HEALTHY_TIMEOUT, RELEASE, admin_password
from .test_engine_backups import backup_now, first_backup
from .test_load import RECOVERY_TIMEOUT, report_fault, resumed, writing

pytestmark = [pytest.mark.argusai, pytest.mark.daytwo]

POSTGRES = {"database": "postgres", **RELEASE}
NEW_PASSWORD = "rotated-on-day-two-1"  # noqa: S105 - a test stack's password
#: The server's socket: the role step's one way in.
SOCKET = "/var/run/postgresql/.s.PGSQL.5432"
REFUSED = "password authentication failed"
#: A new volume too small for a data directory (the failed upgrade), made as a tmpfs before the `up`.
TOO_SMALL_BYTES = 1024 * 1024
#: Where the release's steps keep their log: (volume, mount, file) on a server's stack (they run as root and
#: write the backups volume) and on SQLite (as the image's user, on the data volume).
RELEASE_LOG = {
    "postgres": ("backups", "/backups", "/backups/steps/release-steps.log"),
    "sqlite": ("data", "/app/data", "/app/data/schema-gate/release-steps.log"),
}


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


def started(stack: Stack, role: str) -> tuple[str, str]:
    """A container's id and start time: the same pair means it was neither replaced nor restarted."""
    container = stack.container(role)
    return container.id, container.attrs["State"]["StartedAt"]


CAMERA = {"name": "Gate", "type": "rtsp", "rtsp_url": "rtsp://127.0.0.1:8554/g", "is_enabled": False}
CAMERA_PASSWORD = "gate-camera-pass-1"  # noqa: S105 - a test camera's
MQTT = {"broker_host": "127.0.0.1", "username": "argus", "password": "mqtt-broker-pass-1", "enabled": False}
ENCRYPTED = "encrypted:"
HTTP_UNAUTHORIZED = 401
# Run in the backend container through its own driver: the stored values, as the database holds them.
STORED_PROBE = (
    "import json, os, sqlalchemy as sa; c = sa.create_engine(os.environ['DATABASE_URL']).connect(); "
    "print(json.dumps([c.execute(sa.text('SELECT password FROM cameras WHERE id = :i'), {'i': os.environ['CAMERA']})"
    ".scalar(), c.execute(sa.text('SELECT password FROM mqtt_config')).scalar()]))"
)
# The release's own model decrypts the camera's password (with the keys the backend has).
RELEASE_READS = (
    "import os; from app.core.database import SessionLocal; from app.models.camera import Camera; "
    "print(SessionLocal().get(Camera, os.environ['CAMERA']).get_decrypted_password())"
)


def _backend_env(stack: Stack) -> dict[str, str]:
    return dict(item.split("=", 1) for item in stack.container("backend").attrs["Config"]["Env"])


def _in_backend(stack: Stack, code: str, camera: str) -> str:
    result = stack.container("backend").exec_run(["python", "-c", code], environment={"CAMERA": camera})
    output = result.output.decode(errors="replace")
    assert result.exit_code == 0, output[-2000:]
    return output.strip().splitlines()[-1]


def _decrypts(key: str, stored: str) -> str | None:
    """The plain value when `stored` decrypts with `key` alone, else None."""
    try:
        return Fernet(key.encode()).decrypt(stored.removeprefix(ENCRYPTED).encode()).decode()
    except InvalidToken:
        return None


def _rotate_password_under_writes(stack: Stack, config: dict[str, object]) -> None:
    """A supplied new password while the client writes: ALTER ROLE first, the server never restarted."""
    old = _password(stack)
    server = started(stack, "postgres")
    writer = writing(stack)
    began = time.monotonic()
    try:
        stack.up(config, {"postgresPassword": NEW_PASSWORD})
        up_seconds = time.monotonic() - began
        wait_for("the new backend's /health", stack.healthy, HEALTHY_TIMEOUT)
        wait_for("writes acknowledged again", resumed(writer, time.monotonic()), RECOVERY_TIMEOUT)
    finally:
        writer.stop()
    assert _password(stack) == NEW_PASSWORD != old
    assert started(stack, "postgres") == server, "the server was not restarted"
    code, output = _connects(stack, old)
    assert code != 0
    assert REFUSED in output
    code, output = _connects(stack, NEW_PASSWORD)
    assert code == 0, output
    assert int(output.strip()) >= len(writer.acknowledged)
    # The backups follow too: the new backup container dumps with the new password.
    _, backup_seconds = backup_now(stack, "postgres")
    report_fault("password-rotation", writer, began, time.monotonic())
    record_result(
        f"RESULT daytwo password rotation: up {up_seconds:.1f} s, server not restarted, old password refused, "
        f"new accepted, a backup with it in {backup_seconds:.1f} s (one plain backend restart, for comparison: "
        "benchmarks/daytwo.py)"
    )


def _login(stack: Stack) -> dict[str, str]:
    """The admin's login: its access token and refresh token."""
    base_url = f"http://127.0.0.1:{stack.backend_port}"
    status, login, _ = release_api.login(base_url, admin_password(stack))
    assert status == HTTP_OK
    assert call(base_url, "GET", "/api/v1/auth/me", token=login["access_token"])[0] == HTTP_OK
    return login


def _after_jwt_rotation(stack: Stack, login: dict[str, str]) -> None:
    """Old access tokens refused at once; the refresh token the login gave still gets a new one."""
    base_url = f"http://127.0.0.1:{stack.backend_port}"
    old_status = call(base_url, "GET", "/api/v1/auth/me", token=login["access_token"])[0]
    status, refreshed = call(base_url, "POST", "/api/v1/auth/refresh", {"refresh_token": login["refresh_token"]})
    assert (old_status, status) == (HTTP_UNAUTHORIZED, HTTP_OK)
    assert call(base_url, "GET", "/api/v1/auth/me", token=refreshed["access_token"])[0] == HTTP_OK
    record_result("RESULT daytwo jwt rotation: the old access token 401, the login's refresh token gave a new one")


def _credentials(stack: Stack) -> tuple[str, str]:
    """A camera with a password and the MQTT broker's password, set through the API: (camera id, the key)."""
    base_url = f"http://127.0.0.1:{stack.backend_port}"
    token = sign_in(base_url, admin_password(stack))
    status, camera = call(base_url, "POST", "/api/v1/cameras", {**CAMERA, "password": CAMERA_PASSWORD}, token)
    assert status == HTTP_CREATED
    assert call(base_url, "PUT", "/api/v1/integrations/mqtt/config", MQTT, token)[0] == HTTP_OK
    key = _backend_env(stack)["ENCRYPTION_KEY"]
    stored = json.loads(_in_backend(stack, STORED_PROBE, str(camera["id"])))
    assert [_decrypts(key, value) for value in stored] == [CAMERA_PASSWORD, MQTT["password"]]
    return str(camera["id"]), key


def _release_log(stack: Stack, database: str) -> str:
    """The release steps' log of the stack's last run of them, read from its volume."""
    volume, mount, path = RELEASE_LOG[database]
    code, log = stack.oneoff(
        RELEASE["backendImage"], ["cat", path], volumes={stack.physical(volume): {"bind": mount, "mode": "ro"}}
    )
    assert code == 0, log
    return log


def _after_key_rotation(stack: Stack, camera: str, old_key: str, database: str, how: str) -> None:
    """The credentials under the new key alone, no longer the old; the release reads them."""
    new_key = _backend_env(stack)["ENCRYPTION_KEY"]
    assert new_key != old_key
    assert _backend_env(stack)["ENCRYPTION_KEY_PREVIOUS"] == old_key
    after = json.loads(_in_backend(stack, STORED_PROBE, camera))
    assert [_decrypts(new_key, value) for value in after] == [CAMERA_PASSWORD, MQTT["password"]]
    assert [_decrypts(old_key, value) for value in after] == [None, None]
    assert _in_backend(stack, RELEASE_READS, camera) == CAMERA_PASSWORD
    (line,) = [line for line in _release_log(stack, database).splitlines() if line.startswith("key-rotation:")]
    record_result(f"RESULT daytwo encryption key rotation ({database}, {how}): {line}")


def test_rotations_on_postgres_under_writes(stack: Stack) -> None:
    """The password under writes; then the JWT key and the generated ENCRYPTION_KEY together; then set back."""
    stack.up(POSTGRES)
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    first_backup(stack, "postgres")
    camera, old_key = _credentials(stack)
    _rotate_password_under_writes(stack, POSTGRES)

    def up(config: dict[str, object]) -> None:
        stack.up(config, {"postgresPassword": NEW_PASSWORD})  # the password in use since

    login = _login(stack)
    up({**POSTGRES, "jwtSecretKeyRotation": 1, "encryptionKeyRotation": 1})
    wait_for("the new backend's /health", stack.healthy, HEALTHY_TIMEOUT)
    _after_jwt_rotation(stack, login)
    _after_key_rotation(stack, camera, old_key, "postgres", "generated")
    # Set back, the generated key is one the data is no longer under: refused by the data, nothing changed.
    serving = started(stack, "backend")
    with pytest.raises(ApplyError, match="release-steps"):
        up({**POSTGRES, "jwtSecretKeyRotation": 1})
    assert "key-rotation: FAILED" in _release_log(stack, "postgres")
    assert started(stack, "backend") == serving
    assert stack.healthy()
    assert _in_backend(stack, RELEASE_READS, camera) == CAMERA_PASSWORD
    record_result("RESULT daytwo encryption key set back: refused by key-rotation, the backend untouched")


def test_a_supplied_encryption_key_on_sqlite(stack: Stack) -> None:
    """The key named with the one in use as the previous one: every credential re-encrypted in SQLite too."""
    config = {"database": "sqlite", **RELEASE, "backupEnabled": False}
    stack.up(config)
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    camera, old_key = _credentials(stack)
    new_key = Fernet.generate_key().decode()
    stack.up(config, {"encryptionKey": new_key, "encryptionKeyPrevious": old_key})
    wait_for("the new backend's /health", stack.healthy, HEALTHY_TIMEOUT)
    assert _backend_env(stack)["ENCRYPTION_KEY"] == new_key
    _after_key_rotation(stack, camera, old_key, "sqlite", "supplied")


def _sign_in_again(base_url: str, password: str) -> str:
    """Log in once the backend has replaced the connections a step ended (the first request after may fail)."""
    tokens: list[str] = []

    def attempt() -> bool:
        status, body, _ = release_api.login(base_url, password)
        if status == HTTP_OK:
            tokens.append(str(body["access_token"]))
        return status == HTTP_OK

    wait_for("an admin login", attempt, RECOVERY_TIMEOUT)
    return tokens[0]


def test_a_failed_rotation_or_upgrade_changes_nothing(stack: Stack) -> None:
    """A failed ALTER ROLE or a failed major upgrade stops `up` there, with the old server serving, writable.

    The socket gone: the role step fails, the old password serves; the server restarted, the generated
    password is rotated. The new major's volume too small: `pg-upgrade` fails, 15 serves on, writable.
    """
    config = {**POSTGRES, "backupEnabled": False}
    stack.up(config)
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    old = _password(stack)
    backend = started(stack, "backend")
    # The server's socket gone: the role step cannot reach the server.
    code, output = stack.exec("postgres", ["rm", "-f", SOCKET])
    assert code == 0, output
    rotated = {**config, "postgresPasswordRotation": 1}
    with pytest.raises(ApplyError, match="postgres-role"):
        stack.up(rotated)
    assert started(stack, "backend") == backend, "the backend was not touched"
    assert stack.healthy()
    code, output = _connects(stack, old)
    assert code == 0, output
    # The server restarted (its socket back), the same `up` completes the rotation.
    stack.container("postgres").restart(timeout=30)
    wait_for("the server healthy again", lambda: stack.health("postgres") == "healthy", HEALTHY_TIMEOUT)
    stack.up(rotated)
    wait_for("the new backend's /health", stack.healthy, HEALTHY_TIMEOUT)
    new = _password(stack)
    assert new != old
    assert _connects(stack, new)[0] == 0
    assert REFUSED in _connects(stack, old)[1]
    record_result("RESULT daytwo refused rotation: up stopped at postgres-role, the old backend serving; next up done")

    # A major upgrade that fails before the switch: the new volume a tmpfs too small for a data directory.
    server = started(stack, "postgres")
    stack.client.volumes.create(
        stack.physical("pgdata-17"),
        driver="local",
        driver_opts={"type": "tmpfs", "device": "tmpfs", "o": f"size={TOO_SMALL_BYTES}"},
        labels=Naming(NAME_PREFIX, stack.name).labels("pgdata-17"),
    )
    with pytest.raises(ApplyError, match="pg-upgrade"):
        stack.up({**rotated, "postgresImage": POSTGRES_17.tag, "postgresUpgrades": [17]})
    assert started(stack, "postgres") == server
    assert server_major(stack) == "15"
    base_url = f"http://127.0.0.1:{stack.backend_port}"
    token = _sign_in_again(base_url, admin_password(stack))
    status, camera = call(base_url, "POST", "/api/v1/cameras", CAMERA, token)
    assert status == HTTP_CREATED, "the old database is writable again"
    assert post_event(Session(base_url, token, str(camera["id"])), 1)[0] == HTTP_CREATED
    _, log = stack.oneoff(
        stack.container("postgres").image.id,
        ["cat", "/backups/steps/pg-upgrade.log"],
        volumes={stack.physical("backups"): {"bind": "/backups", "mode": "ro"}},
    )
    assert "nothing was changed" in log, log
    record_result("RESULT daytwo failed upgrade (new volume full): up stopped at pg-upgrade, 15 serving, writable")


def server_major(stack: Stack) -> str:
    """The major version the stack's running server reports."""
    code, output = stack.exec(
        "postgres",
        ["psql", "-h", "/var/run/postgresql", "-U", "argusai", "-d", "argusai", "-XAtc", "SHOW server_version_num"],
    )
    assert code == 0, output
    return str(int(output.strip()) // 10000)

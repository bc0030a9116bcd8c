"""What the Pulumi engine would do between two runs of the program: config transitions, init errors, drift.

Each test runs the real program twice under mocks, the second time over the state the first left (as
the engine would hold it after `pulumi up`, read back the way pulumi-docker reads it), and asserts the
engine's plan: nothing protected deleted or replaced, no spurious replacement, failures retried.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.fernet import Fernet

from components.docker_common import go_duration
from testkit import plan as planning
from testkit.harness import commit, run_program
from testkit.provider import CONTAINER, DaemonModel, diff, duration_ns, go_duration_string

FERNET_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
PROD_LIKE = {"database": "postgres", "protectData": True}


def _up(stack: str, overrides: dict[str, Any], secrets: dict[str, Any] | None = None, prior=None, **kw: Any):
    deployment = run_program(stack, overrides, secrets, prior=prior)
    return deployment, commit(deployment, prior, **kw)


def _replan(
    stack: str, first: dict[str, Any], second: dict[str, Any], secrets: dict[str, Any] | None = None
) -> planning.Plan:
    _, state = _up(stack, first)
    return planning.plan(state, run_program(stack, second, secrets, prior=state))


def test_second_run_with_nothing_changed_plans_nothing() -> None:
    """After `up` (state read back as the provider reads it), the same config plans zero changes."""
    for stack, config in (("embedded", {}), ("prod", {}), ("dev", {"bindAddress": "::"})):
        assert _replan(stack, config, config).summary() == [], stack


def test_daemon_log_options_cause_no_replacement() -> None:
    """Dockerd merges daemon.json log-opts into a container's options; none are declared, so no diff."""
    daemon = DaemonModel(default_log_driver="local", default_log_opts={"compress": "false", "max-size": "50m"})
    _, state = _up("prod", {}, daemon=daemon)
    assert planning.plan(state, run_program("prod", prior=state)).summary() == []


def test_json_file_with_options_would_be_replaced_on_such_a_host() -> None:
    """The provider model catches the old declaration: json-file + log_opts on a host with `compress`."""
    daemon = DaemonModel(default_log_opts={"compress": "true"})
    declared = {"name": "c", "image": "sha256:1", "logDriver": "json-file", "logOpts": {"max-size": "10m"}}
    from testkit.provider import container_state_simulated

    state = container_state_simulated(declared, daemon)
    assert diff(CONTAINER, declared, state).replace == ["logOpts"]


def test_two_bindings_of_one_port_would_be_replaced_on_every_run() -> None:
    """Why `::` is one binding: dockerd reads two bindings of a port back reversed; the list is force-new."""
    from testkit.provider import container_state_simulated

    declared = {
        "name": "c",
        "ports": [
            {"internal": 8000, "external": 8000, "ip": "0.0.0.0"},  # noqa: S104 - declared, never bound
            {"internal": 8000, "external": 8000, "ip": "::"},
        ],
    }
    assert diff(CONTAINER, declared, container_state_simulated(declared, DaemonModel())).replace == ["ports"]


def test_durations_are_declared_as_go_prints_them() -> None:
    """`60s` reads back as `1m0s`: declared any other way, every run would show a diff."""
    assert go_duration(60) == "1m0s"
    assert go_duration(3600 + 90) == "1h1m30s"
    assert go_duration(2) == "2s"
    assert go_duration(0.5) == "500ms"
    assert go_duration(90.25) == "1m30.25s"
    for seconds in (0.5, 1.5, 2, 60, 65, 90.25, 3690):
        # What dockerd stores (nanoseconds) as the provider prints it back.
        assert go_duration(seconds) == go_duration_string(duration_ns(go_duration(seconds)))
    deployment = run_program("prod")
    for c in deployment.of_type(CONTAINER):
        hc = c.plain("healthcheck")
        if hc:
            assert hc["startPeriod"] in ("1m0s", "30s", "0s"), c.name
    # And the model really flags the other form.
    state = {"healthcheck": {"tests": ["CMD", "true"], "startPeriod": "1m0s"}}
    assert diff(CONTAINER, {"healthcheck": {"tests": ["CMD", "true"], "startPeriod": "60s"}}, state).changed


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(PROD_LIKE, {**PROD_LIKE, "backupEnabled": False}, id="backups-off"),
        pytest.param(PROD_LIKE, {**PROD_LIKE, "database": "sqlite"}, id="postgres-to-sqlite"),
        pytest.param({"protectData": True}, {"protectData": True, "database": "postgres"}, id="sqlite-to-postgres"),
        pytest.param(PROD_LIKE, {**PROD_LIKE, "protectData": False}, id="unprotect"),
        pytest.param({"protectData": False}, {"protectData": True}, id="protect"),
        pytest.param(PROD_LIKE, {**PROD_LIKE, "frontendImage": ""}, id="frontend-off"),
    ],
)
def test_config_changes_never_delete_or_replace_protected_resources(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    """Each transition plans without a refusal, and no volume or generated secret is deleted or replaced.

    The exceptions hold no data: the server modes' driver volume (a cache, made again from the index when
    needed) and the server's socket volume (made with the server).
    """
    steps = _replan("it", first, second)
    assert steps.refusals == []
    no_data = ("driver-volume", "postgres-pgsocket")
    kept = [s for s in steps.changes if s.type.startswith(("random:", "docker:index/volume")) and s.name not in no_data]
    assert kept == [], [str(s) for s in kept]


def test_leaving_postgres_keeps_its_data_volume() -> None:
    """Postgres -> sqlite: the server goes (and its version check, the data move and the driver), its data stays."""
    steps = _replan("it", PROD_LIKE, {**PROD_LIKE, "database": "sqlite"})
    deleted = sorted(s.name for s in steps.ops("delete", "forget"))
    assert deleted == [
        "driver-step-container",
        "driver-volume",
        "network-db",
        "pgdata-check-container",
        "postgres-container",
        "postgres-image",
        "postgres-pgsocket",
        "postgres-role-container",
    ]


@pytest.mark.parametrize(
    ("change", "replaced"),
    [
        (
            {"backendImage": "example/backend:2"},
            # The pre-upgrade backup and the release's steps run again for the new image, before the backend
            # is replaced.
            {
                "backend-container",
                "backend-image",
                "backup-container",
                "schema-backup-container",
                "release-steps-container",
            },
        ),
        # The proxy publishes the app's port and the old-ports container the others; the backend's CORS list
        # names the published URLs.
        ({"backendPort": 8111}, {"backend-container", "old-ports-container"}),
        ({"bindAddress": "127.0.0.1"}, {"backend-container", "proxy-container", "old-ports-container"}),
        ({"bindAddress": "::"}, {"proxy-container", "old-ports-container"}),
    ],
)
def test_image_port_and_address_changes_replace_only_what_they_touch(change: dict[str, Any], replaced: set) -> None:
    """Replacements stay where the change is; data volumes and secrets are untouched."""
    steps = _replan("it", {"protectData": True}, {"protectData": True, **change})
    assert steps.refusals == []
    assert {s.name for s in steps.changes} == replaced
    assert all(s.op == "replace" for s in steps.changes)


def test_a_failed_wait_is_retried_and_blocks_dependants() -> None:
    """Postgres's `wait` timed out: the next `up` replaces it (replaceOnChanges *), it is not accepted."""
    deployment = run_program("prod")
    state = commit(deployment, failed={"argusai-prod-postgres"})
    steps = planning.plan(state, run_program("prod", prior=state))
    assert [str(s) for s in steps.changes] == ["replace postgres-container (#initerror)"]


def test_without_replace_on_changes_an_init_error_becomes_an_empty_update() -> None:
    """The engine's behaviour the program guards against: an empty update that clears the error."""
    old = planning.ResourceState("u", CONTAINER, "c", {}, {"name": "c"}, init_errors=["unhealthy"])
    assert planning.resource_diff(old, CONTAINER, {"name": "c"}, []).op == "update"
    assert planning.resource_diff(old, CONTAINER, {"name": "c"}, ["*"]).op == "replace"


def test_supplying_the_secret_in_use_is_accepted() -> None:
    """A value equal to the generated one (copied from the state) plans nothing."""
    deployment, state = _up("it", PROD_LIKE)
    url = deployment.outputs["databaseUrl"].value
    password = url.split(":")[2].split("@")[0]
    steps = planning.plan(state, run_program("it", PROD_LIKE, {"postgresPassword": password}, prior=state))
    assert steps.refusals == []
    assert steps.summary() == []


def test_a_new_encryption_key_without_the_one_in_use_is_refused() -> None:
    """Supplied after the first deploy with another value and no previous key: refused, naming both keys."""
    _, state = _up("it", PROD_LIKE)
    with pytest.raises(
        Exception, match="argusai:encryptionKey' differs from the value this stack last deployed"
    ) as err:
        run_program("it", PROD_LIKE, {"encryptionKey": FERNET_KEY}, prior=state)
    assert FERNET_KEY not in str(err.value)
    assert "argusai:encryptionKeyPrevious" in str(err.value)


GATED = {**PROD_LIKE, "schemaGate": True}
# What a new ENCRYPTION_KEY runs again before the backend gets it: the backup first, the release's steps
# (they read the keys; the re-encryption among them); then the services that carry the key.
KEY_ROTATION_CHANGES = {"schema-backup-container", "release-steps-container", "backend-container"}


@pytest.mark.parametrize("how", ["supplied", "generated"])
def test_a_new_encryption_key_with_the_one_in_use_is_a_rotation(how: str) -> None:
    """With the key in use as the previous one: the backup, then the release's steps, then the backend, both keys."""
    first, state = _up("it", GATED)
    in_use = first.container("backend").env()["ENCRYPTION_KEY"]
    if how == "supplied":
        rotated = run_program("it", GATED, {"encryptionKey": FERNET_KEY, "encryptionKeyPrevious": in_use}, prior=state)
    else:
        rotated = run_program("it", {**GATED, "encryptionKeyRotation": 1}, prior=state)
    steps = planning.plan(state, rotated)
    assert steps.refusals == []
    assert {s.name for s in steps.changes} == KEY_ROTATION_CHANGES
    assert steps.ops("create", "delete", "forget") == []
    env = rotated.container("backend").env()
    assert env["ENCRYPTION_KEY_PREVIOUS"] == in_use
    assert env["ENCRYPTION_KEY"] != in_use
    Fernet(env["ENCRYPTION_KEY"])
    step = rotated.container("release-steps")
    assert step.env()["ENCRYPTION_KEY"] == env["ENCRYPTION_KEY"]
    assert step.env()["ENCRYPTION_KEY_PREVIOUS"] == in_use
    assert "key_rotation" in step.env()["RELEASE_PARTS"].split()
    # After the backup, before the backend.
    assert rotated.container("schema-backup").urn in step.dependencies
    assert step.urn in rotated.container("backend").dependencies
    # No key on a command line: the environment only, and that is secret.
    assert in_use not in json.dumps(step.plain("entrypoints"))
    assert step.is_secret("envs")


def test_a_new_jwt_key_is_a_rotation() -> None:
    """A new JWT signing key locks no data out: accepted, and the backend (with the steps that read it) follows."""
    _, state = _up("it", PROD_LIKE)
    steps = planning.plan(state, run_program("it", PROD_LIKE, {"jwtSecretKey": "j" * 40}, prior=state))
    assert steps.refusals == []
    assert "backend-container" in {s.name for s in steps.changes}
    assert steps.ops("delete", "forget") == []
    rotated = run_program("it", {**PROD_LIKE, "jwtSecretKeyRotation": 1}, prior=state)
    assert planning.plan(state, rotated).refusals == []


# What a new PostgreSQL password replaces: the role step first (ALTER ROLE on the running server), then what
# connects with the new URL; never the server itself (a restart the backend would wait through) nor a volume.
# The release's steps and the backend, as for a new key (they carry the URL), and the password's own.
ROTATION_REPLACES = {*KEY_ROTATION_CHANGES, "postgres-role-container", "driver-step-container", "backup-container"}


def test_a_new_postgres_password_is_a_rotation_on_the_running_server() -> None:
    """Supplied after the first deploy with another value: the role step runs first, the server stays."""
    steps = _replan("it", PROD_LIKE, PROD_LIKE, {"postgresPassword": "a-new-password-1"})
    assert steps.refusals == []
    assert {s.name for s in steps.changes} <= ROTATION_REPLACES
    assert {"postgres-role-container", "backend-container", "backup-container"} <= {s.name for s in steps.changes}


@pytest.mark.parametrize("rotations", [1, 2])
def test_rotating_the_generated_password_adds_a_generator_and_keeps_the_old(rotations: int) -> None:
    """`postgresPasswordRotation` raised: a new generator; the earlier ones stay (protected, never deleted)."""
    deployment, state = _up("it", {**PROD_LIKE, "postgresPasswordRotation": rotations - 1})
    before = deployment.outputs["databaseUrl"].value
    rotated = run_program("it", {**PROD_LIKE, "postgresPasswordRotation": rotations}, prior=state)
    steps = planning.plan(state, rotated)
    assert steps.refusals == []
    assert [str(s) for s in steps.changes if s.type.startswith("random:")] == [
        f"create secrets-postgres-password-r{rotations}"
    ]
    assert {s.name for s in steps.changes if s.type.startswith("docker:")} <= ROTATION_REPLACES
    assert rotated.outputs["databaseUrl"].value != before
    assert all(r.protect for r in rotated.registrations if r.name.startswith("secrets-postgres-password"))


def test_unsetting_a_supplied_secret_is_refused_too() -> None:
    """Back to the generator after running on a supplied key would switch keys: refused."""
    _, state = _up("it", PROD_LIKE, {"encryptionKey": FERNET_KEY})
    with pytest.raises(Exception, match="argusai:encryptionKey"):
        run_program("it", PROD_LIKE, prior=state)


def test_secrets_supplied_before_the_first_deploy_are_simply_used() -> None:
    """No earlier deployment: nothing to compare with."""
    deployment = run_program("it", PROD_LIKE, {"encryptionKey": FERNET_KEY})
    assert f"ENCRYPTION_KEY={FERNET_KEY}" in deployment.container("backend").plain("envs")

"""Lifecycle on a real engine: redeploy over retained data, idempotence, two stacks, protection, bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml

from components.naming import LABEL_STACK
from components.settings import ConfigError
from testkit.applier import ApplyError
from testkit.harness import CONTAINER, IMAGE, ROOT

from .conftest import FRONTEND_IMAGE, Stack, wait_for

pytestmark = pytest.mark.integration

HEALTHY_TIMEOUT = 90
# What a test stack must override in a shipped stack file: its images, ports and reach.
TEST_ONLY_KEYS = (
    "backendImage",
    "postgresImage",
    "frontendImage",
    "backendPort",
    "frontendPort",
    "bindAddress",
    "protectData",
)


def _engine_objects(stack: Stack) -> dict[str, list[str]]:
    """Names of every container, network and volume the engine holds for this stack."""
    selector = {"label": f"{LABEL_STACK}={stack.name}"}
    return {
        "containers": sorted(c.name for c in stack.client.containers.list(all=True, filters=selector)),
        "networks": sorted(n.name for n in stack.client.networks.list(filters=selector)),
        "volumes": sorted(v.name for v in stack.client.volumes.list(filters=selector)),
    }


def _like(stack_file: str) -> dict[str, Any]:
    """The config of a shipped stack file, minus what a test stack has to set itself."""
    config = yaml.safe_load((ROOT / stack_file).read_text())["config"]
    keys = {key.split(":", 1)[1]: value for key, value in config.items()}
    return {key: value for key, value in keys.items() if key not in TEST_ONLY_KEYS}


def test_disposable_stack_destroys_data_with_its_secrets(stack: Stack) -> None:
    """ProtectData false: `destroy` deletes the volumes too, so the next `up` (new secrets) starts clean.

    Before, the volumes were retained and re-adopted while the secrets were generated anew: PostgreSQL
    kept the old password and the backend was locked out.
    """
    overrides = {"database": "postgres"}
    first = stack.up(overrides)
    stack.post_notes(["row-1", "row-2"])

    stack.down()
    assert _engine_objects(stack) == {"containers": [], "networks": [], "volumes": []}

    second = stack.up(overrides)
    new_secrets = second.outputs["databaseUrl"].value != first.outputs["databaseUrl"].value
    assert new_secrets, "a destroyed stack's generated password came back"  # compared, never shown
    wait_for("backend /health", stack.healthy, HEALTHY_TIMEOUT)
    assert stack.notes() == ["startup"]
    log = stack.container("postgres").logs().decode(errors="replace")
    assert "already holds a database" not in log


def test_second_apply_changes_nothing(stack: Stack) -> None:
    """Running the program again and applying it recreates nothing (sqlite, frontend, backups)."""
    overrides = {"frontendImage": FRONTEND_IMAGE}
    deployment = stack.up(overrides)
    before = {
        reg.plain("name"): stack.client.containers.get(reg.plain("name")).id for reg in deployment.of_type(CONTAINER)
    }

    assert stack.plan(overrides).summary() == []
    stack.up(overrides)
    after = {name: stack.client.containers.get(name).id for name in before}
    assert after == before


def test_two_stacks_side_by_side(make_stack: Callable[[], Stack]) -> None:
    """A dev-like and a prod-like stack share one engine; destroying one leaves the other untouched."""
    dev, prod = make_stack(), make_stack()
    dev.up(_like("Pulumi.dev.yaml"))
    prod.up(_like("Pulumi.prod.yaml"))
    assert dev.backend_port != prod.backend_port
    dev_objects, prod_objects = _engine_objects(dev), _engine_objects(prod)
    for kind in ("containers", "networks", "volumes"):
        assert dev_objects[kind]
        assert not set(dev_objects[kind]) & set(prod_objects[kind]), kind
    assert dev.healthy()
    assert prod.healthy()
    prod_ids = {c.name: c.id for c in prod.client.containers.list(filters={"label": f"{LABEL_STACK}={prod.name}"})}

    dev.down()
    assert _engine_objects(dev)["containers"] == []
    running = {c.name: c.id for c in prod.client.containers.list(filters={"label": f"{LABEL_STACK}={prod.name}"})}
    assert running == prod_ids
    assert prod.healthy()


def test_protected_data_refuses_destroy(stack: Stack) -> None:
    """With protectData, `destroy` refuses before deleting anything, as Pulumi does."""
    stack.up({"protectData": True, "backupEnabled": False})
    before = _engine_objects(stack)
    with pytest.raises(ApplyError, match="protected"):
        stack.down()
    assert _engine_objects(stack) == before


@pytest.mark.parametrize(
    ("key", "value"),
    [("database", "mysql"), ("backendPort", 70000)],
)
def test_bad_config_creates_nothing(stack: Stack, key: str, value: Any) -> None:
    """Invalid settings stop the program before anything reaches the engine."""
    with pytest.raises(ConfigError, match=f"argusai:{key}"):
        stack.up({key: value})
    assert _engine_objects(stack) == {"containers": [], "networks": [], "volumes": []}


def test_applier_fails_loudly(stack: Stack) -> None:
    """An input the applier does not map, or an image not on the host, is an error, never skipped."""
    deployment = stack.program({"backupEnabled": False})
    deployment.container("backend").inputs["privileged"] = True
    with pytest.raises(ApplyError, match="'privileged'"):
        stack.applier.up(deployment, stack.state)

    deployment = stack.program({"backupEnabled": False})
    image = next(reg for reg in deployment.of_type(IMAGE) if reg.name == "backend-image")
    image.inputs["name"] = "argusai-test/absent:never"
    with pytest.raises(ApplyError, match="could not be pulled"):
        stack.applier.up(deployment, stack.state)
    assert not stack.client.images.list(name="argusai-test/absent")
    assert _engine_objects(stack) == {"containers": [], "networks": [], "volumes": []}

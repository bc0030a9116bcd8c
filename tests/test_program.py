"""The whole program as `pulumi up` and `pulumi preview` run it, with the shipped stack files."""

from __future__ import annotations

import pytest
from pulumi.output import Unknown

from testkit.harness import CONTAINER, NETWORK, VOLUME, Deployment, run_program


def _declared(deployment: Deployment) -> list[tuple[str, str]]:
    return sorted((r.type, r.name) for r in deployment.registrations)


def test_embedded_default_is_sqlite_with_frontend_and_backups(embedded: Deployment) -> None:
    """No stack file: SQLite, backend + frontend + backup behind the proxy, published on every interface."""
    containers = sorted(r.plain("name") for r in embedded.of_type(CONTAINER))
    assert containers == [
        "argusai-embedded-backend",
        "argusai-embedded-backup",
        "argusai-embedded-frontend",
        "argusai-embedded-frontend-check",
        "argusai-embedded-old-ports",
        "argusai-embedded-proxy",
        "argusai-embedded-release-steps",
        "argusai-embedded-schema-backup",
    ]
    assert sorted(embedded.outputs) == [
        "adminPassword",
        "backendUrl",
        "backupVolume",
        "dataVolume",
        "databaseMode",
        "databaseUrl",
        "frontendUrl",
        "networkName",
        "pgdataVolume",
        "proxyVolume",
        "secretFingerprints",
        "url",
    ]
    assert embedded.outputs["url"].value == "http://localhost"
    assert embedded.outputs["backendUrl"].value == "http://localhost:8000"
    assert embedded.outputs["adminPassword"].secret
    assert embedded.outputs["networkName"].value == "argusai-embedded-app"
    assert embedded.outputs["dataVolume"].value == "argusai-embedded-data"


def test_prod_declares_every_piece(prod: Deployment) -> None:
    """PostgreSQL mode: two networks, four retained volumes and the driver's cache, pgdata exported."""
    assert sorted(r.plain("name") for r in prod.of_type(NETWORK)) == ["argusai-prod-app", "argusai-prod-db"]
    volumes = prod.of_type(VOLUME)
    assert sorted(r.plain("name") for r in volumes) == [
        "argusai-prod-backups",
        "argusai-prod-data",
        "argusai-prod-pgdata",
        "argusai-prod-pgsocket",
        "argusai-prod-proxy",
        "argusai-prod-pydeps",
    ]
    data = [v for v in volumes if not v.plain("name").endswith(("-pydeps", "-pgsocket"))]
    assert all(v.retain_on_delete and v.protect for v in data)
    # The driver volume is a cache, made again from the index when it is gone; the socket volume holds a socket.
    assert not prod.volume("pydeps").protect
    assert not prod.volume("pgsocket").protect
    # postgres, backend, frontend, proxy, the old ports, backup; the steps: the data's version check, its
    # role's password, driver, the pre-upgrade backup, the release's steps (gate, data move, key rotation,
    # first admin), frontend check.
    assert len(prod.of_type(CONTAINER)) == 12
    assert prod.outputs["pgdataVolume"].value == "argusai-prod-pgdata"


def test_secrets_are_secret_everywhere(prod: Deployment) -> None:
    """DatabaseUrl and every env list that holds a password or key are secret."""
    assert prod.outputs["databaseUrl"].secret
    for role in ("postgres", "backend", "backup"):
        assert prod.container(role).is_secret("envs"), role
    assert not prod.outputs["backendUrl"].secret


def test_sqlite_database_url_is_secret_too(embedded: Deployment) -> None:
    """Consistent: the output is secret in both modes, so tooling never has to special-case it."""
    assert embedded.outputs["databaseUrl"].secret


def test_only_postgres_and_backend_on_the_database_network(prod: Deployment) -> None:
    """The internal network holds postgres, the backend, the backup sidecar and the gate's steps; nothing else."""
    members = sorted(
        c.plain("name")
        for c in prod.of_type(CONTAINER)
        if "argusai-prod-db" in [n["name"] for n in c.plain("networksAdvanced") or []]
    )
    assert members == [
        "argusai-prod-backend",
        "argusai-prod-backup",
        "argusai-prod-postgres",
        "argusai-prod-release-steps",
        "argusai-prod-schema-backup",
    ]
    assert [n["name"] for n in prod.container("postgres").plain("networksAdvanced")] == ["argusai-prod-db"]


def test_every_child_has_a_component_parent(prod: Deployment) -> None:
    """Custom resources live under their component (`parent=self`), not loose in the stack."""
    for registration in prod.registrations:
        if registration.type.startswith(("docker:", "random:")):
            assert ":argusai:" in registration.parent, registration.name


def test_every_fixed_name_container_is_replaced_delete_first(prod: Deployment) -> None:
    """Otherwise a replacement fails with "name already in use" or "port is already allocated"."""
    assert all(c.delete_before_replace for c in prod.of_type(CONTAINER))


def test_protected_by_default() -> None:
    """The embedded default protects generated secrets and volumes; dev turns protection off."""
    embedded, dev = run_program("embedded"), run_program("dev")
    for r in embedded.registrations:
        if r.type.startswith("random:") or r.type == VOLUME:
            assert r.protect, r.name
    assert not any(r.protect for r in dev.registrations)
    # A disposable stack: destroy deletes its volumes together with its secrets.
    assert not any(r.retain_on_delete for r in dev.of_type(VOLUME))
    assert all(r.retain_on_delete for r in embedded.of_type(VOLUME))


@pytest.mark.parametrize("stack", ["embedded", "dev", "prod"])
def test_preview_declares_the_same_and_survives_unknowns(stack: str) -> None:
    """In a preview generated values and image ids are unknown; the same resources are declared."""
    up, preview = run_program(stack), run_program(stack, preview=True)
    assert _declared(preview) == _declared(up)
    url = preview.outputs["databaseUrl"]
    assert url.secret
    if stack == "prod":
        assert not url.known
    # Unknown until the image is resolved on the host, as in a real preview.
    assert all(isinstance(c.plain("image"), Unknown) for c in preview.of_type(CONTAINER))


def test_program_is_deterministic(prod: Deployment) -> None:
    """Same config, same declarations: a second `pulumi up` has nothing to change."""
    again = run_program("prod")

    def key(deployment: Deployment) -> list[tuple[str, str, str]]:
        return sorted((r.type, r.name, repr(r.inputs)) for r in deployment.registrations)

    assert key(again) == key(prod)

"""Physical names: derived in one place from prefix and stack, so stacks never collide."""

from __future__ import annotations

from components.naming import Naming
from testkit.harness import CONTAINER, NETWORK, VOLUME, Deployment, labels_of, run_program

DOCKER_KINDS = (CONTAINER, NETWORK, VOLUME)


def _physical_names(deployment: Deployment) -> set[tuple[str, str]]:
    """(kind, name): Docker names containers, networks and volumes each in a namespace of its own."""
    return {(r.type, r.plain("name")) for r in deployment.registrations if r.type in DOCKER_KINDS}


def test_names_follow_prefix_stack_role() -> None:
    """`argusai-prod-postgres` and friends."""
    naming = Naming(prefix="argusai", stack="prod")
    assert naming.physical_name("postgres") == "argusai-prod-postgres"
    assert naming.labels("postgres")["argusai.stack"] == "prod"


def test_dev_and_prod_share_no_physical_name(prod: Deployment) -> None:
    """Two stacks on one Docker host: every container, network and volume name differs."""
    dev = run_program("dev", {"database": "postgres"})
    dev_names, prod_names = _physical_names(dev), _physical_names(prod)
    assert len(dev_names) == len([r for r in dev.registrations if r.type in DOCKER_KINDS])
    assert dev_names.isdisjoint(prod_names)
    assert all(name.startswith("argusai-dev-") for _, name in dev_names)
    assert all(name.startswith("argusai-prod-") for _, name in prod_names)


def test_name_prefix_applies_to_everything() -> None:
    """`namePrefix` replaces the project name in every physical name."""
    deployment = run_program("embedded", {"namePrefix": "cams", "database": "postgres"})
    assert all(name.startswith("cams-embedded-") for _, name in _physical_names(deployment))


def test_every_docker_object_is_labelled(prod: Deployment) -> None:
    """Labels tie each object to project, stack and role, for operators and for clean-up."""
    for registration in prod.registrations:
        if registration.type in DOCKER_KINDS:
            labels = labels_of(registration)
            assert labels["argusai.project"] == "argusai"
            assert labels["argusai.stack"] == "prod"
            assert labels["argusai.role"]

"""The benchmarks' stacks: each one declares what it claims to measure (they run outside the test suite)."""

from __future__ import annotations

from benchmarks import argusai, deploy, move
from benchmarks.argusai import BACKEND_ROLE, PATH_ROLES
from testkit.harness import CONTAINER, run_program


def _roles(overrides: dict[str, object]) -> set[str]:
    deployment = run_program("bench", overrides)
    return {reg.plain("name").removeprefix("argusai-bench-") for reg in deployment.of_type(CONTAINER)}


def test_stand_in_benchmark_runs_no_gate() -> None:
    """The stand-in backend has no Alembic: a gate would fail, so its stack declares none."""
    roles = _roles(deploy.program_overrides())
    assert {"postgres", "backend", "frontend"} <= roles
    assert not roles & {"schema-backup", "release-steps"}


def test_release_benchmark_measures_the_gate_on_its_path() -> None:
    """The real-release stack declares every container the benchmark times, the gate's steps included."""
    roles = _roles(argusai.program_overrides(8000))
    assert {*PATH_ROLES, BACKEND_ROLE} <= roles
    assert {"frontend", "frontend-check", "proxy"} <= roles  # both release images, as users deploy them
    assert "backup" not in roles  # as the compose file: no backup loop


def test_move_benchmark_switches_a_gated_sqlite_stack_to_postgres() -> None:
    """Before the switch SQLite with the gate; after it PostgreSQL with the data move on the backend's path."""
    before = _roles(move.program_overrides(8000))
    assert "postgres" not in before
    assert {"schema-backup", "release-steps", "backend"} <= before
    overrides = {**move.program_overrides(8000), "database": "postgres"}
    assert {"postgres", "release-steps", "backend"} <= _roles(overrides)
    after = run_program("bench", overrides)
    assert "data_move" in after.container("release-steps").env()["RELEASE_PARTS"].split()


def test_upgrade_benchmark_polls_the_backend_only_through_the_proxy() -> None:
    """Its proxy variant declares the proxy and publishes no backend port; both variants gate a SQLite stack."""
    from benchmarks import upgrade  # here, not above: this test was appended to the module

    deployment = run_program("bench", upgrade.program_overrides(upgrade.PROXY, 8443, 8080))
    containers = {reg.plain("name").removeprefix("argusai-bench-"): reg for reg in deployment.of_type(CONTAINER)}
    assert {"proxy", "schema-backup", "release-steps", "backend"} <= set(containers)
    assert "postgres" not in containers
    assert not containers["backend"].plain("ports")
    assert sorted(int(port["external"]) for port in containers["proxy"].plain("ports")) == [8080, 8443]
    # Over plain HTTP too a Caddy is in front of the backend's port: the old-ports container, in the proxy's
    # image, which holds requests as the proxy does.
    plain = run_program("bench", upgrade.program_overrides(upgrade.DIRECT, 8000, 8080))
    plain_roles = {reg.plain("name").removeprefix("argusai-bench-"): reg for reg in plain.of_type(CONTAINER)}
    assert {"proxy", "schema-backup", "release-steps", "backend"} <= set(plain_roles)
    assert not plain_roles["backend"].plain("ports")
    assert 8000 in [int(port["external"]) for port in plain_roles["old-ports"].plain("ports")]

"""Shared fixtures of the unit tests: the shipped stacks, run under the mock harness."""

from __future__ import annotations

import pytest

from testkit.harness import Deployment, run_program


@pytest.fixture(scope="session")
def prod() -> Deployment:
    """The shipped prod stack (PostgreSQL), as `pulumi up` would declare it."""
    return run_program("prod")


@pytest.fixture(scope="session")
def embedded() -> Deployment:
    """A stack with no stack file: only the defaults embedded in Pulumi.yaml (SQLite)."""
    return run_program("embedded")

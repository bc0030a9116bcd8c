"""Shared test set-up: the project root on sys.path, and the mock harness for every unit test."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The program imports `components` from the project root, as `pulumi up` runs it from there.
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import pytest  # noqa: E402 - after the sys.path set-up above

from harness import Deployment, run_program  # noqa: E402


@pytest.fixture(scope="session")
def prod() -> Deployment:
    """The shipped prod stack (PostgreSQL), as `pulumi up` would declare it."""
    return run_program("prod")


@pytest.fixture(scope="session")
def embedded() -> Deployment:
    """A stack with no stack file: only the defaults embedded in Pulumi.yaml (SQLite)."""
    return run_program("embedded")

"""Shared fixtures of the unit tests (the shipped stacks, run under the mock harness), and result lines.

A test's result lines (timings, figures: `record_result`) are repeated in the terminal summary, so a run
without -s still reports them. Under pytest-xdist they travel from a worker to the controller on its
test reports; the controller loads this file (the one conftest at the top of `testpaths`), not the
conftests below it, so the summary's hooks live here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from testkit.harness import Deployment, commit, run_program


@pytest.fixture(scope="session")
def prod() -> Deployment:
    """The shipped prod stack (PostgreSQL), as `pulumi up` would declare it."""
    return run_program("prod")


@pytest.fixture(scope="session")
def embedded() -> Deployment:
    """A stack with no stack file: only the defaults embedded in Pulumi.yaml (SQLite)."""
    return run_program("embedded")


@pytest.fixture(scope="session")
def prod_deployed(prod: Deployment) -> Deployment:
    """The prod stack's next `up`, nothing changed: its app network is on the host (a backend may serve)."""
    return run_program("prod", prior=commit(prod))


@pytest.fixture(scope="session")
def embedded_deployed(embedded: Deployment) -> Deployment:
    """The embedded stack's next `up`, nothing changed (as `prod_deployed`)."""
    return run_program("embedded", prior=commit(embedded))


RESULTS: list[str] = []
RESULT_PROPERTY = "result-line"
#: How many of RESULTS a worker has handed on already.
_FORWARDED = [0]


def record_result(line: str) -> None:
    """Print a result line now (pytest -s) and keep it for the terminal summary."""
    print(line, flush=True)
    RESULTS.append(line)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """On a pytest-xdist worker, hand the result lines recorded since the last report to this one."""
    report = yield
    if hasattr(item.config, "workerinput"):
        report.user_properties.extend((RESULT_PROPERTY, line) for line in RESULTS[_FORWARDED[0] :])
        _FORWARDED[0] = len(RESULTS)
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """On the controller of a parallel run: keep the result lines a worker's report carries."""
    if getattr(report, "node", None) is not None:  # set by pytest-xdist on reports from a worker
        RESULTS.extend(value for name, value in report.user_properties if name == RESULT_PROPERTY)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Repeat the result lines at the end of the run."""
    if RESULTS:
        terminalreporter.section("results")
        for line in RESULTS:
            terminalreporter.write_line(line)

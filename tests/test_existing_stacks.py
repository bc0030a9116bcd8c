"""Stacks deployed by an earlier version of this program keep every resource when the program changes.

`tests/fixtures/state-*.json` are states as the engine held them after `pulumi up` of the program before
the database mode became one object per mode (saved with `testkit.plan.State.to_json`). Running today's
program over them must plan no delete, no replacement and no refusal: a restructure of the code never
moves a user's data or secrets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from testkit import plan as planning
from testkit.harness import run_program

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize(
    ("snapshot", "stack", "overrides"),
    [
        ("state-prod.json", "prod", {}),
        ("state-embedded.json", "embedded", {}),
        ("state-dev-postgres-nobackup.json", "dev", {"database": "postgres", "backupEnabled": False}),
    ],
)
def test_existing_stack_plans_no_delete_or_replacement(snapshot: str, stack: str, overrides: dict[str, Any]) -> None:
    """Same config, today's program: nothing deleted, replaced or refused (and nothing changed at all)."""
    state = planning.State.from_json((FIXTURES / snapshot).read_text())
    steps = planning.plan(state, run_program(stack, overrides, prior=state))
    assert steps.refusals == []
    assert [str(s) for s in steps.ops("delete", "forget", "replace")] == []
    assert steps.summary() == []

"""The test kit's mock harness: what a run leaves behind must not disturb the tests after it."""

from __future__ import annotations

import ast
import gc
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.secrets import LEGACY_COMMAND
from testkit import plan as planning
from testkit.harness import UNREAD_ERRORS, run_components, run_program
from testkit.provider import STACK_REFERENCE

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MAX_FAILED_RUNS = 20


def test_a_failed_runs_leftover_futures_are_collected_without_formatting_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A program that stops leaves futures holding its error; collecting them formats no traceback.

    Python 3.11 formats a traceback with `ast.parse` (for its ^^^ marks), and asyncio reports a future
    whose error nobody read from the future's finalizer: in whatever code the garbage collector
    interrupts. Inside another `ast.parse` (a test reading source, pytest rewriting or reporting) that
    nested parse breaks the outer one with "SystemError: AST constructor recursion depth mismatch".
    """
    state = planning.State.from_json((FIXTURES / "state-embedded.json").read_text())
    parsed: list[Any] = []
    real_parse = ast.parse

    def counting_parse(*args: Any, **kwargs: Any) -> ast.AST:
        parsed.append(args[0])
        return real_parse(*args, **kwargs)

    # Collections only where this test makes them. Pulumi's runtime lets go of a failed run's futures
    # some runs later (how many depends on its threads): fail again until a collection finds some.
    gc.collect()
    UNREAD_ERRORS.clear()
    gc.disable()
    try:
        for _ in range(MAX_FAILED_RUNS):
            with pytest.raises(Exception, match=LEGACY_COMMAND):
                run_program("embedded", {}, prior=state)
            with monkeypatch.context() as patch:
                patch.setattr(ast, "parse", counting_parse)
                gc.collect()
            if UNREAD_ERRORS:
                break
    finally:
        gc.enable()
    assert parsed == [], f"{len(parsed)} source segments parsed to format tracebacks at collection"
    assert any("ConfigError" in line for line in UNREAD_ERRORS), "reported, as one line each"


def test_a_read_of_the_stacks_own_checkpoint_sees_the_write_in_progress() -> None:
    """The kit's backend, as a real one can: the stack's own checkpoint, read during its `up`, is torn."""

    def program() -> None:
        pulumi.StackReference("self", stack_name="organization/argusai/unit")

    with pytest.raises(Exception, match="failed to load checkpoint: EOF"):
        run_components(program, stack="unit")


@pytest.mark.parametrize(
    "overrides", [{}, {"database": "postgres"}, {"tlsHostnames": ["argus.lan"], "tlsSource": "stack-ca"}]
)
def test_the_program_never_reads_its_own_checkpoint(overrides: dict[str, Any]) -> None:
    """Under that backend every mode runs, first `up` and the next: no read of what the same `up` writes."""
    first = run_program("dev", overrides)
    state = planning.State(outputs=dict(first.raw_outputs))
    again = run_program("dev", overrides, prior=state)
    assert not [r for r in again.registrations if r.type == STACK_REFERENCE]

"""The test kit's mock harness: what a run leaves behind must not disturb the tests after it."""

from __future__ import annotations

import ast
import gc
from pathlib import Path
from typing import Any

import pytest

from components.secrets import LEGACY_COMMAND
from testkit import plan as planning
from testkit.harness import UNREAD_ERRORS, run_program

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FAILED_RUNS = 3


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

    # Collections only where this test makes them: the failed run's leftovers wait for the one below.
    gc.collect()
    UNREAD_ERRORS.clear()
    gc.disable()
    try:
        # Pulumi's runtime lets go of a failed run's futures only some runs later.
        for _ in range(FAILED_RUNS):
            with pytest.raises(Exception, match=LEGACY_COMMAND):
                run_program("embedded", {}, prior=state)
        monkeypatch.setattr(ast, "parse", counting_parse)
        gc.collect()
    finally:
        gc.enable()
    assert parsed == [], f"{len(parsed)} source segments parsed to format tracebacks at collection"
    assert any("ConfigError" in line for line in UNREAD_ERRORS), "still reported, as one line each"

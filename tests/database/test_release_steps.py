"""components/scripts/release_steps.py: the release's steps in one process, in their order, the first failure last.

The parts are stand-ins here (each records that it ran): what is tested is the runner's order, its stop at a
failure, and the data move's end (the hold) coming after every other part. The real parts run in the
release's image in the engine tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from components.scripts import RELEASE_STEPS

RUN_TIMEOUT_SECONDS = 60
# A stand-in part: records its name, returns the status its environment names (default 0).
PART = """import os
def main():
    with open(os.environ["RAN"], "a") as f:
        f.write("{name}\\n")
    status = os.environ.get("FAIL_{name}", "0")
    if status == "raise":
        raise RuntimeError("this part fails on purpose")
    if status == "exit":
        raise SystemExit("{name}: FAILED: its own message")
    return int(status)
"""
# The data move's stand-in: `begin` records, `end` (the hold) records too.
MOVE = """import os
def begin():
    def end():
        # What a backend waiting for the steps finds when the hold begins.
        passed = os.environ.get("RELEASE_STEPS_PASSED", "")
        seen = open(passed).read().strip() if passed and os.path.exists(passed) else ""
        with open(os.environ["RAN"], "a") as f:
            f.write(("data_move end " + seen).strip() + "\\n")
    with open(os.environ["RAN"], "a") as f:
        f.write("data_move\\n")
    return int(os.environ.get("FAIL_data_move", "0")), end
"""


def _run(
    tmp_path: Path, parts: str, passed: dict[str, str] | None = None, **fail: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    for name in ("schema_gate", "key_rotation", "admin_seed"):
        (tmp_path / f"{name}.py").write_text(PART.format(name=name))
    (tmp_path / "data_move").mkdir(exist_ok=True)
    (tmp_path / "data_move" / "__init__.py").write_text("")
    (tmp_path / "data_move" / "__main__.py").write_text(MOVE)
    # Beside its stand-in parts, run as in the container: `python -m` with their directory on PYTHONPATH.
    (tmp_path / RELEASE_STEPS.name).write_bytes(RELEASE_STEPS.path.read_bytes())
    ran = tmp_path / "ran"
    ran.write_text("")
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "RAN": str(ran),
        "RELEASE_PARTS": parts,
        **(passed or {}),
        **{f"FAIL_{name}": status for name, status in fail.items()},
    }
    result = subprocess.run(  # noqa: S603 - this interpreter, the project's own script
        [sys.executable, "-m", RELEASE_STEPS.module],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    return result, ran.read_text().split("\n")[:-1]


def test_the_parts_run_in_their_order_and_the_move_ends_last(tmp_path: Path) -> None:
    """Named in any order: gate, move, rotation, seed; the move's hold only after all of them."""
    result, ran = _run(tmp_path, "admin_seed data_move key_rotation schema_gate")
    assert result.returncode == 0, result.stderr
    assert ran == ["schema_gate", "data_move", "key_rotation", "admin_seed", "data_move end"]


def test_without_the_move_the_others_run(tmp_path: Path) -> None:
    """SQLite's steps: no move, nothing held."""
    result, ran = _run(tmp_path, "schema_gate key_rotation admin_seed")
    assert result.returncode == 0, result.stderr
    assert ran == ["schema_gate", "key_rotation", "admin_seed"]


@pytest.mark.parametrize(("failing", "before"), [("schema_gate", []), ("data_move", ["schema_gate"])])
def test_the_first_failure_ends_the_run_with_its_status(tmp_path: Path, failing: str, before: list[str]) -> None:
    """The parts after a failure never run, and the move is never ended (no hold, no done marker)."""
    result, ran = _run(tmp_path, "schema_gate data_move key_rotation admin_seed", **{failing: "3"})
    assert result.returncode == 3
    assert ran == [*before, failing]
    assert f"{failing} failed (status 3)" in result.stdout


@pytest.mark.parametrize("parts", ["", "schema_gate migrate"])
def test_an_unknown_or_missing_part_is_refused(tmp_path: Path, parts: str) -> None:
    """Nothing runs; the message names the parts there are."""
    result, ran = _run(tmp_path, parts)
    assert result.returncode != 0
    assert ran == []
    assert "RELEASE_PARTS must name some of schema_gate, data_move, key_rotation, admin_seed" in result.stderr


@pytest.mark.parametrize(
    ("how", "said"), [("raise", "RuntimeError: this part fails on purpose"), ("exit", "FAILED: its own")]
)
def test_a_part_that_raises_or_exits_fails_the_run_with_what_it_said(tmp_path: Path, how: str, said: str) -> None:
    """A migration that raises, a refusal by SystemExit: status 1, the cause in the log, nothing after it."""
    result, ran = _run(tmp_path, "schema_gate key_rotation admin_seed", key_rotation=how)
    assert result.returncode == 1
    assert ran == ["schema_gate", "key_rotation"]
    assert said in result.stderr
    assert "key_rotation failed (status 1)" in result.stdout


def _passed(tmp_path: Path) -> dict[str, str]:
    return {"RELEASE_STEPS_PASSED": str(tmp_path / "passed"), "RELEASE_STEPS_TOKEN": "token-1"}


def test_a_run_that_passed_writes_its_token_before_the_move_holds(tmp_path: Path) -> None:
    """The backend waiting for these steps finds the token once every part is done, before the hold begins."""
    (tmp_path / "passed").write_text("token-0\n")  # an earlier run's
    result, ran = _run(tmp_path, "schema_gate data_move key_rotation admin_seed", _passed(tmp_path))
    assert result.returncode == 0, result.stderr
    assert ran[-1] == "data_move end token-1"
    assert (tmp_path / "passed").read_text() == "token-1\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("passed")] == ["passed"], "no partial file left"


@pytest.mark.parametrize("part", ["schema_gate", "data_move", "admin_seed"])
def test_a_run_that_failed_leaves_the_token_as_it_was(tmp_path: Path, part: str) -> None:
    """A failed part: the earlier run's token stays, so a backend waiting for this run never serves."""
    (tmp_path / "passed").write_text("token-0\n")
    result, _ = _run(tmp_path, "schema_gate data_move key_rotation admin_seed", _passed(tmp_path), **{part: "3"})
    assert result.returncode == 3
    assert (tmp_path / "passed").read_text() == "token-0\n"

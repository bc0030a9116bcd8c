"""The one-shot step: what it declares so that a failure stops the rollout and the next `up` retries."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pulumi_docker as docker
import pytest

from components.naming import Naming
from components.step import DONE_MARKER, WRAPPER, Step, StepArgs
from testkit.harness import CONTAINER, run_components


def _step(script: str = "echo migrated") -> tuple[Step, object]:
    return run_components(
        lambda: Step(
            "gate",
            StepArgs(
                naming=Naming("argusai", "unit"),
                role="schema-gate",
                image="sha256:" + "0" * 64,
                script=script,
                volumes=[docker.ContainerVolumeArgs(volume_name="argusai-unit-backups", container_path="/steps")],
                log_dir="/steps",
            ),
        )
    )


def test_declares_a_container_that_fails_fast_and_is_retried() -> None:
    """Auto-removed, no restart (a failure fails `wait` at once), wait, replaced on any change."""
    _, deployment = _step()
    (reg,) = deployment.of_type(CONTAINER)
    assert reg.plain("name") == "argusai-unit-schema-gate"
    assert reg.plain("rm") is True
    assert reg.plain("restart") == "no"
    assert reg.plain("wait") is True
    assert reg.plain("healthcheck")["tests"] == ["CMD", "test", "-f", DONE_MARKER]
    assert reg.replace_on_changes == ["*"]
    assert reg.delete_before_replace
    assert reg.plain("networkMode") == "none"
    assert reg.plain("entrypoints")[-1] == "echo migrated"
    assert reg.is_secret("envs")


@pytest.mark.parametrize(("script", "code"), [("echo fine", 0), ("echo broken >&2; exit 3", 3)])
def test_wrapper_logs_and_marks_success_only(tmp_path: Path, script: str, code: int) -> None:
    """The wrapper itself, run by a real sh: the log is kept either way, the marker only on success."""
    log = tmp_path / "steps" / "gate.log"
    marker = Path(DONE_MARKER)
    marker.unlink(missing_ok=True)
    # On success the wrapper idles until stopped (SIGTERM, as `docker stop` sends).
    proc = subprocess.Popen(  # noqa: S603 - the component's own wrapper
        ["sh", "-c", WRAPPER, "gate", script],  # noqa: S607 - sh from PATH
        env={"STEP_LOG": str(log), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        text=True,
        process_group=0,
    )
    try:
        out, _ = proc.communicate(timeout=3)
        assert (code, proc.returncode) == (3, 3)
        assert "broken" in out
        assert not marker.exists()
    except subprocess.TimeoutExpired:
        assert code == 0
        assert marker.exists()
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=5) == 0  # the idle loop ends cleanly on SIGTERM
    finally:
        marker.unlink(missing_ok=True)
    assert log.read_text().strip() in ("fine", "broken")

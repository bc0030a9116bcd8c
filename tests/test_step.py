"""The one-shot step: what it declares so that a failure stops the rollout and the next `up` retries."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pulumi
import pulumi_docker as docker
import pytest

from components.naming import Naming
from components.step import HEALTHCHECK, PROBE_IDLE_SECONDS, WRAPPER, Step, StepArgs
from testkit.harness import CONTAINER, run_components

# Generous: the wrapper is a few shell commands, but a loaded 2-core machine may be slow to run them.
WRAPPER_TIMEOUT_SECONDS = 30
# Long enough for sh to start and poll once on a loaded machine; short next to a probe's idle time.
PROBE_SETTLE_SECONDS = 1.0
# A finished step should cost the engine far less than one exec per second.
PROBE_MIN_IDLE_SECONDS = 60


def step_args(
    role: str = "schema-gate",
    script: str = "echo migrated",
    networks: Sequence[pulumi.Input[str]] = (),
    files: Sequence[docker.ContainerUploadArgs] = (),
) -> StepArgs:
    """A step of the stack `unit` on a fixed image, logging to its backups volume."""
    return StepArgs(
        naming=Naming("argusai", "unit"),
        role=role,
        image="sha256:" + "0" * 64,
        script=script,
        volumes=[docker.ContainerVolumeArgs(volume_name="argusai-unit-backups", container_path="/steps")],
        log_dir="/steps",
        networks=networks,
        files=files,
    )


def _step(script: str = "echo migrated") -> tuple[Step, object]:
    return run_components(lambda: Step("gate", step_args(script=script)))


def test_declares_a_container_that_fails_fast_and_is_retried() -> None:
    """Auto-removed, no restart (a failure fails `wait` at once), wait, replaced on any change."""
    _, deployment = _step()
    (reg,) = deployment.of_type(CONTAINER)
    assert reg.plain("name") == "argusai-unit-schema-gate"
    assert reg.plain("rm") is True
    assert reg.plain("restart") == "no"
    assert reg.plain("wait") is True
    assert reg.plain("healthcheck")["tests"] == list(HEALTHCHECK.test)
    assert reg.plain("healthcheck")["interval"] == "500ms"
    # Longer than an idle probe: a probe past its timeout would count as a failure.
    assert reg.plain("healthcheck")["timeout"] == "6m0s"
    assert reg.replace_on_changes == ["*"]
    assert reg.delete_before_replace
    assert reg.plain("networkMode") == "none"
    assert reg.plain("entrypoints")[-1] == "echo migrated"
    assert reg.is_secret("envs")


@pytest.mark.parametrize(("script", "code"), [("echo fine", 0), ("echo broken >&2; exit 3", 3)])
def test_wrapper_logs_and_marks_success_only(tmp_path: Path, script: str, code: int) -> None:
    """The wrapper itself, run by a real sh: the log is kept either way, the marker only on success."""
    log = tmp_path / "steps" / "gate.log"
    marker = tmp_path / "done"  # the container's marker path, moved out of the host's shared /tmp
    # On success the wrapper idles until stopped (SIGTERM, as `docker stop` sends).
    proc = subprocess.Popen(  # noqa: S603 - the component's own wrapper
        ["sh", "-c", WRAPPER, "gate", script],  # noqa: S607 - sh from PATH
        env={"STEP_LOG": str(log), "STEP_DONE": str(marker), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        text=True,
        process_group=0,
    )
    try:
        if code:
            out, _ = proc.communicate(timeout=WRAPPER_TIMEOUT_SECONDS)
            assert proc.returncode == code
            assert "broken" in out
            assert not marker.exists()
        else:
            deadline = time.monotonic() + WRAPPER_TIMEOUT_SECONDS
            while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert marker.exists()
            assert proc.poll() is None, "a successful step idles until it is stopped"
            os.killpg(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=WRAPPER_TIMEOUT_SECONDS) == 0  # the idle loop ends cleanly on SIGTERM
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert log.read_text().strip() in ("fine", "broken")


def test_probe_reports_done_at_once_and_then_idles(tmp_path: Path) -> None:
    """The healthcheck, run by a real sh: waits for the marker, reports it at once, later probes idle."""
    marker = tmp_path / "done"
    env = {"STEP_DONE": str(marker), "PATH": "/usr/bin:/bin"}

    def probe() -> subprocess.Popen[str]:
        return subprocess.Popen(["sh", "-c", HEALTHCHECK.test[1]], env=env, text=True, process_group=0)  # noqa: S603, S607

    first = probe()
    try:
        time.sleep(PROBE_SETTLE_SECONDS)
        assert first.poll() is None, "the first probe waits for the step to be done"
        marker.touch()
        started = time.monotonic()
        assert first.wait(timeout=WRAPPER_TIMEOUT_SECONDS) == 0
        assert time.monotonic() - started < PROBE_SETTLE_SECONDS, "healthy follows done within one poll"
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    later = probe()
    try:
        time.sleep(PROBE_SETTLE_SECONDS)
        # Reported once: the next probe idles (PROBE_IDLE_SECONDS) instead of exec-ing every interval.
        assert later.poll() is None
        assert PROBE_IDLE_SECONDS >= PROBE_MIN_IDLE_SECONDS
    finally:
        os.killpg(later.pid, signal.SIGKILL)
        later.wait(timeout=WRAPPER_TIMEOUT_SECONDS)

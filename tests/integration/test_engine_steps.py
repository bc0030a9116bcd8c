"""One-shot steps on the engine: a failure stops the rollout before its dependants, the next `up` retries.

The step and a dependant service are declared through the real components, applied by the stateful
applier (which waits and records init errors as pulumi-docker and the engine do).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import pulumi
import pulumi_docker as docker
import pytest
from docker import errors as docker_errors

from components.docker_common import data_volume, service_container
from components.naming import LABEL_STACK, Naming
from components.scripts import IN_CONTAINER, PYTHONPATH_ENV
from components.step import Step, StepArgs
from testkit import plan as planning
from testkit.applier import ApplyError
from testkit.harness import Deployment, run_components

from .conftest import BACKEND_IMAGE, NAME_PREFIX, Stack, record_result

#: A failed step must stop the update long before its 600 s timeout (it is removed when it exits).
FAIL_FAST_SECONDS = 30
#: Past Linux's limit on one argument or environment string (MAX_ARG_STRLEN, 131,072 bytes).
BIG_SCRIPT_BYTES = 200 * 1024


def _declare(stack: Stack, script: str, files: Sequence[docker.ContainerUploadArgs] = ()) -> Deployment:
    """A log volume, the step, and a service that depends on it, as the program would declare them."""
    naming = Naming(NAME_PREFIX, stack.name)
    image = stack.image_id(BACKEND_IMAGE)

    def build() -> None:
        root = pulumi.ComponentResource("argusai:test:Steps", "steps")
        log = data_volume("log", naming.physical_name("steplog"), naming.labels("steplog"), parent=root, keep=False)
        volumes = [docker.ContainerVolumeArgs(volume_name=log.name, container_path="/steps")]
        step = Step(
            "gate",
            StepArgs(
                naming=naming, role="gate", image=image, script=script, volumes=volumes, log_dir="/steps", files=files
            ),
        )
        service_container(
            "after",
            naming=naming,
            role="after",
            grace_seconds=1,
            parent=root,
            depends_on=[step.container],
            image=image,
            network_mode="none",
        )

    _, deployment = run_components(build, stack=stack.name)
    return deployment


def _log(stack: Stack) -> str:
    code, out = stack.oneoff(BACKEND_IMAGE, ["cat", "/s/gate.log"], volumes={stack.physical("steplog"): {"bind": "/s"}})
    assert code == 0, out
    return out


def test_failed_step_stops_dependants_and_is_retried(stack: Stack) -> None:
    """Fail: nothing after it is created, fast, the log kept; again: retried; fixed: dependants proceed."""
    failing = _declare(stack, "echo 'schema check failed' >&2; exit 3")
    started = time.monotonic()
    with pytest.raises(ApplyError, match="gate"):
        stack.apply(failing)
    failed_after = time.monotonic() - started
    assert failed_after < FAIL_FAST_SECONDS
    assert not stack.client.containers.list(all=True, filters={"name": stack.physical("after")})
    assert "schema check failed" in _log(stack)
    gate = next(r for r in stack.state.resources.values() if r.name == "gate-container")
    assert gate.init_errors, "the failed create is kept with an init error"

    # The next `up` with nothing changed retries the step instead of accepting it.
    again = _declare(stack, "echo 'schema check failed' >&2; exit 3")
    assert [str(s) for s in planning.plan(stack.state, again).changes] == [
        "replace gate-container (#initerror)",
        "create after",
    ]
    with pytest.raises(ApplyError):
        stack.apply(again)

    fixed = _declare(stack, "echo migrated")
    stack.apply(fixed)
    assert stack.container("after").status in ("running", "created", "exited")
    assert stack.container("gate").attrs["State"]["Health"]["Status"] == "healthy"
    assert "migrated" in _log(stack)
    # Done: another `up` runs nothing again.
    assert planning.plan(stack.state, _declare(stack, "echo migrated")).summary() == []
    record_result(f"RESULT step failure reported after {failed_after:.1f}s (wait timeout 600s)")


def _big_script(tmp_path: Path) -> Path:
    """A Python script of BIG_SCRIPT_BYTES that prints its own size and SHA-256."""
    body = (
        "import hashlib, pathlib\n"
        "me = pathlib.Path(__file__).read_bytes()\n"
        "print('big script ran', len(me), hashlib.sha256(me).hexdigest())\n"
    )
    filler = "# " + "x" * 98 + "\n"
    text = body + filler * ((BIG_SCRIPT_BYTES - len(body)) // len(filler) + 1)
    path = tmp_path / "big.py"
    path.write_text(text)
    return path


def test_a_script_of_200_kb_is_delivered_as_a_file_and_runs(stack: Stack, tmp_path: Path) -> None:
    """Uploaded (by path and hash, as components/scripts delivers every script) and run as `python -m`.

    The same script in one environment variable cannot even start: the kernel refuses the string (E2BIG).
    """
    script = _big_script(tmp_path)
    digest = hashlib.sha256(script.read_bytes()).hexdigest()
    upload = docker.ContainerUploadArgs(file=f"{IN_CONTAINER}/big.py", source=str(script), source_hash=digest)
    stack.apply(_declare(stack, f"{PYTHONPATH_ENV} python -m big", [upload]))
    assert f"big script ran {script.stat().st_size} {digest}" in _log(stack)
    inspect = stack.container("gate").attrs
    assert len(" ".join(inspect["Config"]["Env"] + inspect["Config"]["Entrypoint"])) < BIG_SCRIPT_BYTES // 10, (
        "the script is not in the container's command or environment"
    )

    with pytest.raises(docker_errors.ContainerError, match="argument list too long"):
        stack.client.containers.run(
            BACKEND_IMAGE,
            ["sh", "-c", 'python -c "$BIG"'],
            environment={"BIG": script.read_text()},
            labels={LABEL_STACK: stack.name},
            remove=True,
        )
    record_result(f"RESULT a {script.stat().st_size}-byte script delivered as a file and run")

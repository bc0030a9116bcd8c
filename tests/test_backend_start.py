"""How a new backend starts: beside the release's steps on a new stack, after them on one that may serve.

The decision (`components/backend_start.py`) under the mock harness, whose `getNetwork` answers as the
provider's does (found only when the network is on the host); `backend_serve.py`, the backend's command,
run here with a stand-in release and a stand-in uvicorn.
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.backend import PORT
from components.backend_start import RELEASE_STEPS_PASSED
from components.scripts import BACKEND_SERVE, IN_CONTAINER
from testkit import plan as planning
from testkit.harness import Deployment, commit, run_program

# What a backend on a new stack must not wait for: everything that is on the path before it otherwise.
BEFORE_IT = ("release-steps", "schema-backup", "postgres-role", "postgres", "driver-step")
WAIT_SECONDS = 10
NEWER_IMAGE = "ghcr.io/project-argusai/argusai-backend:1.1"
# How long a stand-in step takes before it writes its token.
STEP_SECONDS = 0.5


def _token(container: Any) -> str:
    return str(container.env()["RELEASE_STEPS_TOKEN"])


def test_a_new_stacks_backend_is_created_beside_the_steps(prod: Deployment, embedded: Deployment) -> None:
    """No app network on the host: the backend waits for nothing before it but its networks, image and volume.

    It runs `backend_serve.py`, which waits for the driver (PostgreSQL) and for the token the release's steps
    (and the backup before them) get.
    """
    for deployment in (prod, embedded):
        backend = deployment.container("backend")
        roles = {r.urn: r.name for r in deployment.registrations}
        waits = {roles[urn] for urn in backend.dependencies}
        assert not waits & {f"{role}-container" for role in BEFORE_IT}, waits
        assert "network-app" in waits
        assert backend.plain("entrypoints") == BACKEND_SERVE.argv
        assert f"{IN_CONTAINER}/backend_serve.py" in backend.uploaded()
        env = backend.env()
        assert env["RELEASE_STEPS_PASSED"] == RELEASE_STEPS_PASSED
        assert env["SERVE_PORT"] == str(PORT)
        assert (
            _token(backend)
            == _token(deployment.container("release-steps"))
            == _token(deployment.container("schema-backup"))
        )
        assert env["PYTHONPATH"].split(":")[0] == "/app", "the release's own modules first"
        assert env["PYTHONPATH"].split(":")[-1] == IN_CONTAINER
    assert prod.container("backend").env()["DRIVER_MODULE"] == "psycopg"
    assert "DRIVER_MODULE" not in embedded.container("backend").env()


def test_a_stack_that_may_serve_creates_its_backend_after_the_steps(
    prod: Deployment, prod_deployed: Deployment
) -> None:
    """The network is there: created after the role and the steps, so a failure leaves the old one serving.

    Same inputs as on the first `up`: only the order differs, so the next `up` plans nothing.
    """
    backend = prod_deployed.container("backend")
    for role in ("release-steps", "postgres-role"):
        assert prod_deployed.container(role).urn in backend.dependencies, role
    assert planning.plan(commit(prod), prod_deployed).summary() == []
    assert _token(backend) == _token(prod.container("backend"))


def test_the_token_is_new_for_a_new_image_and_a_new_network(prod: Deployment) -> None:
    """A new image: a new token, and the steps and the backup run again with it.

    The same stack made again after a destroy (its data volume kept, a new network): a new token, so the file
    the old stack left never matches.
    """
    newer = run_program("prod", {"backendImage": NEWER_IMAGE}, prior=commit(prod))
    assert _token(newer.container("backend")) != _token(prod.container("backend"))
    assert _token(newer.container("release-steps")) == _token(newer.container("backend"))
    again = run_program("prod", prior=planning.State(epoch=1))  # destroyed once: every resource made anew
    assert _token(again.container("backend")) != _token(prod.container("backend"))


def test_without_the_gate_the_image_starts_as_it_is() -> None:
    """SchemaGate false (not an ArgusAI release): its own command, after the database, nothing to wait for."""
    deployment = run_program("prod", {"schemaGate": False})
    backend = deployment.container("backend")
    assert not backend.plain("entrypoints")
    assert "RELEASE_STEPS_TOKEN" not in backend.env()
    assert deployment.container("postgres-role").urn in backend.dependencies


# ---- backend_serve.py, with a stand-in release (`main.app`) and a stand-in uvicorn ----


@pytest.fixture
def serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """The script as a module, its SERVED marker in tmp_path, a stand-in `main` and `uvicorn` importable."""
    release = tmp_path / "release"
    release.mkdir()
    (release / "main.py").write_text("app = 'the release app'\n")
    monkeypatch.syspath_prepend(str(release))
    served: dict[str, Any] = {}
    monkeypatch.setitem(
        sys.modules, "uvicorn", types.SimpleNamespace(run=lambda app, **kw: served.update(app=app, **kw))
    )
    monkeypatch.syspath_prepend(str(BACKEND_SERVE.path.parent))
    module = importlib.import_module(BACKEND_SERVE.module)
    monkeypatch.setattr(module, "SERVED", tmp_path / "served")
    monkeypatch.setattr(module, "POLL_SECONDS", 0.01)
    monkeypatch.setenv("RELEASE_STEPS_PASSED", str(tmp_path / "passed"))
    monkeypatch.setenv("RELEASE_STEPS_TOKEN", "token-1")
    monkeypatch.setenv("SERVE_PORT", "8000")
    monkeypatch.delenv("DRIVER_MODULE", raising=False)
    module.served = served  # type: ignore[attr-defined]
    yield module
    sys.modules.pop("main", None)


def _serve_in_background(module: types.ModuleType) -> threading.Thread:
    thread = threading.Thread(target=module.main, daemon=True)
    thread.start()
    return thread


def test_it_serves_the_release_once_the_steps_wrote_its_token(serve: types.ModuleType, tmp_path: Path) -> None:
    """An earlier run's token is not enough; this backend's is.

    Then uvicorn serves `main.app` as the release's command does (0.0.0.0, its port).
    """
    (tmp_path / "passed").write_text("token-0\n")
    thread = _serve_in_background(serve)
    time.sleep(STEP_SECONDS)
    assert thread.is_alive(), "served on an earlier run's token"
    assert serve.served == {}  # type: ignore[attr-defined]
    (tmp_path / "passed").write_text("token-1\n")
    thread.join(WAIT_SECONDS)
    assert serve.served == {"app": "the release app", "host": "0.0.0.0", "port": 8000}  # type: ignore[attr-defined]  # noqa: S104


def test_after_a_restart_it_serves_at_once(serve: types.ModuleType, tmp_path: Path) -> None:
    """A container that served once serves after a restart (a reboot) whatever a later, failed run left."""
    (tmp_path / "served").touch()
    (tmp_path / "passed").write_text("token-2\n")
    thread = _serve_in_background(serve)
    thread.join(WAIT_SECONDS)
    assert serve.served["app"] == "the release app"  # type: ignore[attr-defined]


def test_it_imports_the_release_only_once_the_driver_imports(
    serve: types.ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release makes its engine at import: the driver (moved into place by its step) must be there first."""
    drivers = tmp_path / "pydeps"
    monkeypatch.syspath_prepend(str(drivers))
    monkeypatch.setenv("DRIVER_MODULE", "stand_in_driver")
    (tmp_path / "passed").write_text("token-1\n")
    thread = _serve_in_background(serve)
    time.sleep(STEP_SECONDS)
    assert "main" not in sys.modules, "imported the release before its driver"
    partial = tmp_path / "pydeps.partial"
    partial.mkdir()
    (partial / "stand_in_driver.py").write_text("")
    partial.rename(drivers)
    thread.join(WAIT_SECONDS)
    assert serve.served["app"] == "the release app"  # type: ignore[attr-defined]
    sys.modules.pop("stand_in_driver", None)


def test_an_image_of_another_layout_is_named(serve: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """No `main` module: it stops with what is missing and the key to set, never serving something else."""
    monkeypatch.setattr(serve, "APP_MODULE", "not_the_release_main")
    with pytest.raises(SystemExit, match="not the layout of an ArgusAI release.*argusai:schemaGate false"):
        serve.main()

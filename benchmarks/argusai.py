"""Real-backend benchmark: this program against ArgusAI's own compose file, same engine, one run each by default.

Measures seconds to the backend's first `GET /health` 200 (PostgreSQL mode, from nothing):

- program: this program's declarations applied by the test kit's applier, schema gate included, with both
  release images as published (the frontend too, as users deploy it); measured where users open the app:
  its page and `/health`, both 200 through the proxy on `httpPort`;
- compose: `docker-compose --profile postgres up -d` with `$ARGUSAI_SOURCE/docker-compose.yml`, changed
  only where it cannot run here (printed as `compose change:` lines);
- the floor, each part measured alone: PostgreSQL from nothing to accepting connections, and a gate-less
  `docker run` of the real backend on an existing database to its first /health 200 (container creation
  included).

Prints `speedup vs compose: N.Nx`, `ratio to floor: N.NNx` (program / sum of the two floors), the gate's
own cost and the program's phases: from one container's creation to the next's on the path to the
release's steps, the steps until they passed, and from then to the app answering; beside that path the
backend (created with the networks on a new stack, importing the release meanwhile: how long before the
steps passed it was there), the driver step and the frontend. `BENCH_RUNS` (default 1) repeats everything
and reports medians. Needs the images (`python -m testkit.images.build --only postgres --only frontend
--only caddy --only argusai-backend --only argusai-frontend`, ARGUSAI_SOURCE set) and Debian's docker-compose.
Run: `python -m benchmarks.argusai`.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import docker
import yaml

from testkit import plan as planning
from testkit.applier import Applier
from testkit.cleanup import remove_stack
from testkit.harness import run_program
from testkit.images.ensure import ensure_images
from testkit.images.recipes import ARGUSAI_BACKEND, ARGUSAI_FRONTEND, CADDY, FRONTEND, POSTGRES
from testkit.net import LOOPBACK, free_port
from testkit.times import created_at, first_healthy_at

ENGINE_TIMEOUT_SECONDS = 300
TIMEOUT_SECONDS = 600
POLL_SECONDS = 0.1
HTTP_TIMEOUT_SECONDS = 2
HTTP_OK = 200
PG_USER = PG_DB = "argusai"


def answers(port: int, path: str) -> bool:
    """Whether 127.0.0.1:port answers GET `path` with 200."""
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=HTTP_TIMEOUT_SECONDS) as r:  # noqa: S310
            return r.status == HTTP_OK
    except (urllib.error.URLError, OSError):
        return False


def health_ok(port: int) -> bool:
    """Whether the backend published on 127.0.0.1:port answers /health with 200."""
    return answers(port, "/health")


def until(check: Any, start: float, what: str) -> float:
    """Poll `check` until true; seconds since `start`."""
    while time.monotonic() - start < TIMEOUT_SECONDS:
        if check():
            return time.monotonic() - start
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"timed out waiting for {what}")


def app_ok(port: int) -> bool:
    """Whether the app's origin on 127.0.0.1:port answers both its page and the API's /health with 200."""
    return answers(port, "/") and answers(port, "/health")


def timed_deploy(deploy: Any, ready: Any, what: str) -> float:
    """Run `deploy` in a thread; seconds from its start until `ready()` (`what` it waits for, for the error)."""
    start = time.monotonic()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            deploy()
        except BaseException as exc:  # reported below, after the wait
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        return until(lambda: ready() or bool(errors), start, what)
    finally:
        thread.join()
        if errors:
            raise errors[0]


def _created(client: docker.DockerClient, name: str) -> float:
    """A container's creation time (Unix seconds), as the engine recorded it."""
    return created_at(client.api.inspect_container(name))


#: The containers on the path to the release's steps, in order; each phase runs from one's creation to the
#: next's, the last's until it passed, and from then to the app answering.
PATH_ROLES = ("pgdata-check", "postgres", "postgres-role", "schema-backup", "release-steps")
#: Beside that path on a new stack: the backend, importing the release while the steps run.
BACKEND_ROLE = "backend"
#: The adaptation to the published backend image, beside that path (it waits for no server): its own cost.
ADAPTATION_ROLE = "driver"
#: Beside the backend: the published frontend (its check, then the origin rewrite at its start).
FRONTEND_ROLE = "frontend"


def release_overrides(port: int) -> dict[str, Any]:
    """The release backend's stack: PostgreSQL mode, no frontend, the API on `port` (`backendPort`), the gate on.

    The other release benchmarks (`move`, `upgrade`) build on it and talk to the API there.
    """
    return {
        "database": "postgres",
        "backendImage": ARGUSAI_BACKEND.tag,
        "postgresImage": POSTGRES.tag,
        "frontendImage": "",
        "bindAddress": LOOPBACK,
        "backendPort": port,
        # The proxy in front (every stack has it): the test Caddy, the app on a free port.
        "proxyImage": CADDY.tag,
        "httpPort": free_port(),
        "protectData": False,
        "backupEnabled": False,  # the compose file has no backups
        "registryDigests": False,  # the images exist only on this engine
    }


def program_overrides(port: int) -> dict[str, Any]:
    """This benchmark's stack: the release's, with its frontend as published, as users deploy it.

    `port` is the app's (`httpPort`), where it is measured.
    """
    return {
        **release_overrides(free_port()),
        "frontendImage": ARGUSAI_FRONTEND.tag,
        "frontendPort": free_port(),
        "httpPort": port,
    }


def program_run(client: docker.DockerClient) -> tuple[float, dict[str, float]]:
    """(seconds to /health 200, seconds per phase on that path and of the adaptation) through this program."""
    stack = f"bench{secrets.token_hex(3)}"
    port = free_port()
    overrides = program_overrides(port)
    deployment = run_program(stack, overrides, image_ids=lambda ref: client.images.get(ref).id)
    try:
        started = time.time()
        seconds = timed_deploy(
            lambda: Applier(client).up(deployment, planning.State()), lambda: app_ok(port), "the app's page and /health"
        )
        created = [_created(client, f"argusai-{stack}-{role}") for role in PATH_ROLES]
        passed = first_healthy_at(client.api.inspect_container(f"argusai-{stack}-{PATH_ROLES[-1]}"))
        marks = [started, *created, passed, started + seconds]
        names = (
            f"program until {PATH_ROLES[0]} created",
            *(f"{role} created to next" for role in PATH_ROLES[:-1]),
            f"{PATH_ROLES[-1]} created to passed",
            "steps passed to the app answering",
        )
        phases = {name: end - begin for name, begin, end in zip(names, marks[:-1], marks[1:], strict=True)}
        # Off the path while positive: how long the backend had been importing when the steps passed.
        phases[f"{BACKEND_ROLE} created, ahead of the steps passing"] = passed - _created(
            client, f"argusai-{stack}-{BACKEND_ROLE}"
        )
        adaptation = f"argusai-{stack}-{ADAPTATION_ROLE}"
        step = client.api.inspect_container(adaptation)
        phases[f"{ADAPTATION_ROLE} step, created to done"] = first_healthy_at(step) - created_at(step)
        # Off the path while positive: how long before the app answered the frontend was there.
        frontend = _created(client, f"argusai-{stack}-{FRONTEND_ROLE}")
        phases[f"{FRONTEND_ROLE} created, ahead of the app answering"] = started + seconds - frontend
        return seconds, phases
    finally:
        remove_stack(client, stack)


def compose_file(source: Path, backend_port: int, frontend_port: int) -> tuple[dict[str, Any], list[str]]:
    """The release's compose file, changed only where it cannot run here; (file, the changes)."""
    compose = yaml.safe_load((source / "docker-compose.yml").read_text())
    services = compose["services"]
    changes = []
    for name, image, ports in (
        ("backend", ARGUSAI_BACKEND.tag, [f"{LOOPBACK}:{backend_port}:8000"]),
        ("frontend", FRONTEND.tag, [f"{LOOPBACK}:{frontend_port}:3000"]),
        ("postgres", POSTGRES.tag, None),
    ):
        service = services[name]
        service.pop("build", None)
        service.pop("container_name", None)
        service["image"] = image
        changes.append(f"{name}: image {image} (no registry here; built from Debian packages / the release)")
        changes.append(f"{name}: no build section, no container_name (one compose project per run)")
        if ports:
            service["ports"] = ports
            changes.append(f"{name}: published on {ports[0]} (a free loopback port)")
    env = services["backend"]["environment"]
    kept = [e for e in env if not e.startswith(("SSL_CERT_FILE=", "SSL_KEY_FILE="))]
    if len(kept) != len(env):
        services["backend"]["environment"] = kept
        changes.append(
            "backend: SSL_CERT_FILE and SSL_KEY_FILE removed: their defaults (data/certs/*.pem) do not exist and "
            "the release refuses to start on a missing certificate path"
        )
    changes.append("frontend: the stand-in frontend (no Next.js image can be had here); not on the measured path")
    return compose, changes


def compose_run(client: docker.DockerClient, compose_bin: str, source: Path) -> tuple[float, list[str]]:
    """Seconds to /health 200 with the release's compose file (postgres profile), and the changes made."""
    project = f"benchcompose{secrets.token_hex(3)}"
    port = free_port()
    compose, changes = compose_file(source, port, free_port())
    password = secrets.token_hex(12)
    env = {
        **os.environ,
        # The compose file's own instructions: POSTGRES_PASSWORD and DATABASE_URL in .env (here: the
        # environment), the URL naming a driver the image carries.
        "POSTGRES_PASSWORD": password,
        "DATABASE_URL": f"postgresql+psycopg://{PG_USER}:{password}@postgres:5432/{PG_DB}",
        "ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "JWT_SECRET_KEY": secrets.token_hex(32),
    }
    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "docker-compose.yml"
        path.write_text(yaml.safe_dump(compose))
        base = [compose_bin, "-p", project, "-f", str(path), "--profile", "postgres"]
        try:
            seconds = timed_deploy(
                lambda: subprocess.run(  # noqa: S603 - the compose binary found on PATH, fixed arguments
                    [*base, "up", "-d"], env=env, check=True, capture_output=True, timeout=TIMEOUT_SECONDS
                ),
                lambda: health_ok(port),
                "the backend's /health",
            )
        finally:
            subprocess.run(  # noqa: S603 - the compose binary found on PATH, fixed arguments
                [*base, "down", "-v", "--remove-orphans"], env=env, check=False, capture_output=True,
                timeout=TIMEOUT_SECONDS,
            )  # fmt: skip
    return seconds, changes


def floors(client: docker.DockerClient) -> tuple[float, float]:
    """(PostgreSQL from nothing to accepting connections, the real backend on an existing database to /health)."""
    label = {"argusai.stack": f"benchfloor{secrets.token_hex(3)}"}
    network = client.networks.create(label["argusai.stack"], labels=label)
    password = secrets.token_hex(12)
    try:
        start = time.monotonic()
        pg = client.containers.run(
            POSTGRES.tag,
            detach=True,
            name=f"{label['argusai.stack']}-postgres",
            environment={"POSTGRES_USER": PG_USER, "POSTGRES_PASSWORD": password, "POSTGRES_DB": PG_DB},
            network=network.name,
            labels=label,
        )
        ready = ["pg_isready", "-h", "127.0.0.1", "-U", PG_USER, "-d", PG_DB]
        pg_seconds = until(lambda: pg.exec_run(ready).exit_code == 0, start, "PostgreSQL")
        env = {
            "DATABASE_URL": f"postgresql+psycopg://{PG_USER}:{password}@{pg.name}:5432/{PG_DB}",
            "ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "JWT_SECRET_KEY": secrets.token_hex(32),
            "COOKIE_SECURE": "false",
            "COOKIE_SAMESITE": "lax",
        }

        def backend_once() -> float:
            port = free_port()
            begin = time.monotonic()
            container = client.containers.run(
                ARGUSAI_BACKEND.tag,
                detach=True,
                environment=env,
                network=network.name,
                ports={"8000/tcp": (LOOPBACK, port)},
                labels=label,
            )
            try:
                return until(lambda: health_ok(port), begin, "the release's /health")
            finally:
                container.remove(force=True)

        backend_once()  # the first start creates the schema: the measured one starts on an existing database
        return pg_seconds, backend_once()
    finally:
        remove_stack(client, label["argusai.stack"])


def compose_prerequisites() -> tuple[str, Path, int]:
    """(the docker-compose binary, the release checkout, BENCH_RUNS); exit saying what is missing."""
    compose_bin = shutil.which("docker-compose")
    source = Path(os.environ.get("ARGUSAI_SOURCE", ""))
    if compose_bin is None or not (source / "docker-compose.yml").is_file():
        sys.exit("needs docker-compose (Debian package docker-compose) and ARGUSAI_SOURCE (the release checkout)")
    runs = int(os.environ.get("BENCH_RUNS", "1"))
    return compose_bin, source, runs


def main() -> None:
    """BENCH_RUNS runs (default 1) of each; print every run and the medians."""
    compose_bin, source, runs = compose_prerequisites()
    client = docker.from_env(timeout=ENGINE_TIMEOUT_SECONDS)
    ensure_images(recipes=(POSTGRES, FRONTEND, CADDY, ARGUSAI_BACKEND, ARGUSAI_FRONTEND))
    figures: dict[str, list[float]] = {}
    changes: list[str] = []
    for run in range(1, runs + 1):
        pg_floor, backend_floor = floors(client)
        program, phases = program_run(client)
        compose, changes = compose_run(client, compose_bin, source)
        print(
            f"run {run}/{runs}: program {program:.1f}s, compose {compose:.1f}s, floors {pg_floor:.1f}s + "
            f"{backend_floor:.1f}s; " + ", ".join(f"{name} {value:.1f}s" for name, value in phases.items()),
            flush=True,
        )
        for key, value in (
            ("program", program),
            ("compose", compose),
            ("pg_floor", pg_floor),
            ("backend_floor", backend_floor),
            ("gate", phases["schema-backup created to next"] + phases["release-steps created to passed"]),
            *phases.items(),
        ):
            figures.setdefault(key, []).append(value)
    median = {key: statistics.median(values) for key, values in figures.items()}
    for change in changes:
        print(f"compose change: {change}")
    print(f"seconds to the app answering (page and /health), this program:  {median['program']:.1f}")
    print(f"seconds to the first /health 200, the release's compose file:   {median['compose']:.1f}")
    print(f"floor: PostgreSQL from nothing to accepting connections:      {median['pg_floor']:.1f}")
    print(f"floor: the release on an existing database to /health 200:   {median['backend_floor']:.1f}")
    print(f"the schema gate's cost (backup step created to the release's steps passed): {median['gate']:.1f}")
    for name in figures:
        if " " in name:  # the program's phases
            print(f"  program phase, {name}: {median[name]:.1f}")
    print(f"speedup vs compose: {median['compose'] / median['program']:.1f}x")
    print(f"ratio to floor: {median['program'] / (median['pg_floor'] + median['backend_floor']):.2f}x")


if __name__ == "__main__":
    main()

"""Deployment benchmark: this program versus ArgusAI's compose file, same engine, same images.

Deploys PostgreSQL + backend + frontend from nothing, RUNS times each way, and prints medians of:
- seconds from start to the backend container being *healthy*, through this program's declared
  resources (applied by the test kit's applier, which stands in for `pulumi up`);
- the same through `docker-compose --profile postgres up -d` with the shipped file;
- PostgreSQL's own time from `docker run` on an empty volume to accepting TCP connections: the floor no
  deployment can beat.

Ends with `speedup vs compose: N.Nx`. Needs a Docker engine, the test images
(`python -m testkit.images.build`) and Debian's docker-compose. Run: `.venv/bin/python -m benchmarks.deploy`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker

from testkit import plan as planning
from testkit.applier import Applier
from testkit.cleanup import remove_stack
from testkit.harness import run_program
from testkit.images.ensure import ensure_images
from testkit.images.recipes import BACKEND, CADDY, FRONTEND, POSTGRES
from testkit.net import LOOPBACK, free_port

ROOT = Path(__file__).resolve().parent.parent

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
POLL_SECONDS = 0.1
TIMEOUT_SECONDS = 300
ENGINE_TIMEOUT_SECONDS = 300
COMPOSE_FILE = ROOT / "benchmarks" / "compose" / "docker-compose.yml"
BACKEND_IMAGE = BACKEND.tag
FRONTEND_IMAGE = FRONTEND.tag
POSTGRES_IMAGE = POSTGRES.tag
CADDY_IMAGE = CADDY.tag


def wait_healthy(client: docker.DockerClient, name: str, start: float, done: dict[str, float]) -> None:
    """Record in `done[name]` the seconds from `start` until container `name` reports healthy."""
    deadline = start + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            state = client.api.inspect_container(name)["State"]
            if state.get("Health", {}).get("Status") == "healthy":
                done[name] = time.monotonic() - start
                return
        except docker.errors.NotFound:
            pass
        time.sleep(POLL_SECONDS)


def timed(client: docker.DockerClient, backend_name: str, deploy: Callable[[], object]) -> float:
    """Run `deploy` and return seconds from its start until the backend is healthy."""
    done: dict[str, float] = {}
    start = time.monotonic()
    watcher = threading.Thread(target=wait_healthy, args=(client, backend_name, start, done))
    watcher.start()
    deploy()
    watcher.join()
    if backend_name not in done:
        raise RuntimeError(f"{backend_name} never became healthy")
    return done[backend_name]


def program_overrides() -> dict[str, Any]:
    """The stack's config: PostgreSQL mode with the stand-in images, on free loopback ports."""
    return {
        "database": "postgres",
        "backendImage": BACKEND_IMAGE,
        "frontendImage": FRONTEND_IMAGE,
        "postgresImage": POSTGRES_IMAGE,
        "bindAddress": LOOPBACK,
        "backendPort": free_port(),
        "frontendPort": free_port(),
        "httpPort": free_port(),
        "proxyImage": CADDY_IMAGE,
        "protectData": False,
        "backupEnabled": False,  # the compose file has no backups
        "registryDigests": False,  # the test images exist only on this engine
        "schemaGate": False,  # the stand-in backend has no Alembic; benchmarks.argusai runs the gate
    }


def program_run(client: docker.DockerClient, applier: Applier, images: dict[str, str]) -> float:
    """Deploy through this program's declarations; return seconds to backend healthy."""
    stack = f"bench{uuid.uuid4().hex[:6]}"
    overrides = program_overrides()
    deployment = run_program(stack, overrides, image_ids=lambda ref: images.get(ref) or client.images.get(ref).id)
    try:
        return timed(client, f"argusai-{stack}-backend", lambda: applier.up(deployment, planning.State()))
    finally:
        remove_stack(client, stack)


def compose_run(client: docker.DockerClient, compose: str) -> float:
    """Deploy with the shipped compose file and its postgres profile; return seconds to backend healthy."""
    project = f"benchcompose{uuid.uuid4().hex[:6]}"
    env = {
        **os.environ,
        "BACKEND_IMAGE": BACKEND_IMAGE,
        "FRONTEND_IMAGE": FRONTEND_IMAGE,
        "POSTGRES_IMAGE": POSTGRES_IMAGE,
        "BIND_ADDRESS": LOOPBACK,
        "BACKEND_PORT": str(free_port()),
        "FRONTEND_PORT": str(free_port()),
        "POSTGRES_PASSWORD": "bench-password",
        "DATABASE_URL": "postgresql://argusai:bench-password@postgres:5432/argusai",
        "ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        "JWT_SECRET_KEY": "bench-jwt-secret-key-of-enough-length-000",
    }
    base = [compose, "-f", str(COMPOSE_FILE), "-p", project, "--profile", "postgres"]
    try:
        return timed(
            client,
            f"{project}_backend_1",
            lambda: subprocess.run(  # noqa: S603 - the compose binary found on PATH, fixed arguments
                [*base, "up", "-d"], env=env, check=True, capture_output=True, timeout=TIMEOUT_SECONDS
            ),
        )
    finally:
        subprocess.run(  # noqa: S603 - the compose binary found on PATH, fixed arguments
            [*base, "down", "-v", "--remove-orphans"],
            env=env,
            check=False,
            capture_output=True,
            timeout=TIMEOUT_SECONDS,
        )


def postgres_floor(client: docker.DockerClient) -> float:
    """Seconds from `docker run` on an empty volume until PostgreSQL accepts TCP connections."""
    name = f"benchpg{uuid.uuid4().hex[:6]}"
    start = time.monotonic()
    container = client.containers.run(
        POSTGRES_IMAGE,
        name=name,
        detach=True,
        environment={"POSTGRES_USER": "argusai", "POSTGRES_PASSWORD": "bench-password", "POSTGRES_DB": "argusai"},
        labels={"argusai.bench": name},
    )
    try:
        while time.monotonic() - start < TIMEOUT_SECONDS:
            code, _ = container.exec_run(["pg_isready", "-h", LOOPBACK, "-U", "argusai", "-d", "argusai"])
            if code == 0:
                return time.monotonic() - start
            time.sleep(POLL_SECONDS)
        raise RuntimeError("postgres never accepted connections")
    finally:
        container.remove(force=True, v=True)


def main() -> None:
    """Run the three measurements RUNS times each and print medians."""
    compose = shutil.which("docker-compose")
    if compose is None:
        sys.exit("benchmark needs docker-compose (Debian package docker-compose)")
    client = docker.from_env(timeout=ENGINE_TIMEOUT_SECONDS)
    images = ensure_images()
    applier = Applier(client)
    figures: dict[str, list[float]] = {"program": [], "compose": [], "floor": []}
    for run in range(1, RUNS + 1):
        figures["floor"].append(postgres_floor(client))
        figures["program"].append(program_run(client, applier, images))
        figures["compose"].append(compose_run(client, compose))
        print(
            f"run {run}/{RUNS}: program {figures['program'][-1]:.1f}s, compose {figures['compose'][-1]:.1f}s, "
            f"postgres floor {figures['floor'][-1]:.1f}s",
            flush=True,
        )
    median = {key: statistics.median(values) for key, values in figures.items()}
    print(f"median seconds to backend healthy, this program:   {median['program']:.1f}")
    print(f"median seconds to backend healthy, compose file:   {median['compose']:.1f}")
    print(f"median seconds for postgres to accept connections: {median['floor']:.1f}")
    print(f"speedup vs compose: {median['compose'] / median['program']:.1f}x")


if __name__ == "__main__":
    main()

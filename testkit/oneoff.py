"""Throwaway containers run to completion: the one way tests run a one-off command on the engine."""

from __future__ import annotations

import time
from dataclasses import dataclass

import docker

#: A cold, loaded 2-core machine may take minutes for the release's imports plus a migration.
TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Finished:
    """A one-off container's result."""

    code: int
    """Exit status."""
    stdout: str
    """What it wrote to stdout."""
    stderr: str
    """What it wrote to stderr."""
    output: str
    """Both, interleaved as the engine logged them."""
    seconds: float
    """From create to exit."""


def run_once(
    client: docker.DockerClient,
    image: str,
    *,
    labels: dict[str, str],
    command: list[str] | None = None,
    entrypoint: list[str] | None = None,
    working_dir: str | None = None,
    network: str | None = None,
    volumes: dict[str, dict[str, str]] | None = None,
    environment: dict[str, str] | None = None,
    user: str | None = None,
) -> Finished:
    """Run one container (labelled, so a stack's cleanup finds it) to completion, then remove it.

    It joins only `network`, or no network at all; `user` (e.g. "0") overrides the image's user.
    """
    start = time.monotonic()
    container = client.containers.run(
        image,
        command,
        entrypoint=entrypoint,
        working_dir=working_dir,
        detach=True,
        network=network,
        network_mode=None if network else "none",
        volumes=volumes or {},
        environment=environment or {},
        labels=labels,
        user=user,
    )
    try:
        code = int(container.wait(timeout=TIMEOUT_SECONDS)["StatusCode"])
        seconds = time.monotonic() - start
        return Finished(
            code=code,
            stdout=container.logs(stdout=True, stderr=False).decode(errors="replace"),
            stderr=container.logs(stdout=False, stderr=True).decode(errors="replace"),
            output=container.logs().decode(errors="replace"),
            seconds=seconds,
        )
    finally:
        container.remove(force=True)

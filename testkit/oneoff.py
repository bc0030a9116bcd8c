"""Throwaway containers run to completion: the one way tests run a one-off command on the engine."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import docker

from testkit.archive import PUBLIC_MODE, tar_of

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
    files: Mapping[str, bytes] | None = None,
) -> Finished:
    """Run one container (labelled, so a stack's cleanup finds it) to completion, then remove it.

    It joins only `network`, or no network at all; `user` (e.g. "0") overrides the image's user; `files`
    (absolute path -> content) are put in place, readable by every user, before it starts.
    """
    start = time.monotonic()
    container = client.containers.create(
        image,
        command,
        entrypoint=entrypoint,
        working_dir=working_dir,
        network=network,
        network_mode=None if network else "none",
        volumes=volumes or {},
        environment=environment or {},
        labels=labels,
        user=user,
    )
    try:
        if files:
            container.put_archive("/", tar_of({path: (content, PUBLIC_MODE) for path, content in files.items()}))
        container.start()
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

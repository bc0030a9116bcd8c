"""A container an interrupted `pulumi up` left on the Docker host: removed before its name is created again.

pulumi-docker creates a container, then waits for it (health, or the end of a one-shot step). An `up`
ended in between (SIGHUP when the SSH session drops, SIGKILL, a reboot) leaves dockerd holding a container
with the fixed name that the state does not know (the engine's pending create), and the next create of
that name fails with `Conflict. The container name ... is already in use`. Compose adopts what carries
its labels; here a `before_create` resource hook on every container removes a container of that name
if, and only if, it carries this stack's labels for that role: let finish first if it is still starting
(PostgreSQL's first initialisation, a step's work), then stopped within its grace period, so a PostgreSQL
left running shuts down cleanly before the new one opens the same data directory. Volumes
are never touched. A container of that name that is not this stack's stops the `up` with an error naming
it: it is not ours to remove.

The hook runs in the program's process during `pulumi up` only (never in a preview), against the engine
the Docker provider uses (`docker:host`, else DOCKER_HOST, else the local socket).
"""

from __future__ import annotations

import time
from contextlib import closing
from pathlib import Path
from typing import Any

import docker
import pulumi
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from components.naming import LABEL_PROJECT, LABEL_ROLE, LABEL_STACK, Engine, Naming

#: One call to the engine (the stop adds its own grace): generous for a cold or remote host.
ENGINE_TIMEOUT_SECONDS = 120
#: How long a leftover still starting (PostgreSQL's first initialisation, a step's work) is let finish
#: before it is stopped: the longest a step may run.
SETTLE_SECONDS = 600
SETTLE_POLL_SECONDS = 1
#: The labels that say whose a container is: this project's prefix, this stack, this role.
IDENTITY = (LABEL_PROJECT, LABEL_STACK, LABEL_ROLE)


class LeftoverError(Exception):
    """A container holds the name and is not this stack's: the `up` stops before touching it."""


def client_args(engine: Engine) -> dict[str, Any]:
    """How to reach the engine the Docker provider talks to (`docker.DockerClient` arguments)."""
    if engine.host is None:
        return {}
    if engine.host.startswith("ssh://"):
        # As the provider: the system's ssh, with the operator's keys and ssh config.
        return {"base_url": engine.host, "use_ssh_client": True}
    if engine.cert_path:
        certs = Path(engine.cert_path).expanduser()
        tls = docker.tls.TLSConfig(
            client_cert=(str(certs / "cert.pem"), str(certs / "key.pem")), ca_cert=str(certs / "ca.pem"), verify=True
        )
        return {"base_url": engine.host, "tls": tls}
    return {"base_url": engine.host}


def engine_client(engine: Engine) -> docker.DockerClient:
    """A client of that engine (DOCKER_HOST and the local socket when the provider names none)."""
    args = client_args(engine)
    if not args:
        return docker.from_env(timeout=ENGINE_TIMEOUT_SECONDS)
    return docker.DockerClient(**args, timeout=ENGINE_TIMEOUT_SECONDS)


def _settle(container: Container) -> None:
    """Let a leftover that is still starting finish first (its health `starting`), up to SETTLE_SECONDS.

    Stopped in the middle, PostgreSQL's first initialisation leaves a data directory with no database in
    it that no later start repairs (the image initialises only an empty one), and a step its work half done.
    """
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        container.reload()
        state = container.attrs["State"]
        if not state.get("Running") or state.get("Health", {}).get("Status") != "starting":
            return
        time.sleep(SETTLE_POLL_SECONDS)


def _remove(container: Container) -> None:
    """Remove a stopped container; one started with auto-remove (a step's `rm`) dockerd removes itself."""
    try:
        container.remove()
    except NotFound:
        return
    except APIError as exc:
        if "already in progress" not in str(exc):
            raise
        try:
            container.wait(condition="removed", timeout=ENGINE_TIMEOUT_SECONDS)
        except NotFound:
            return


def remove_leftover(naming: Naming, role: str, grace_seconds: int) -> pulumi.ResourceHook:
    """The `before_create` hook of the container of `role`: remove this stack's leftover of that name."""
    name = naming.physical_name(role)
    ours = {key: naming.labels(role)[key] for key in IDENTITY}

    def before_create(_: pulumi.ResourceHookArgs) -> None:
        with closing(engine_client(naming.engine)) as engine:
            try:
                container = engine.containers.get(name)
            except NotFound:
                return
            found = {key: container.labels.get(key) for key in IDENTITY}
            if found != ours:
                raise LeftoverError(
                    f"a container named {name} is on the Docker host and is not this stack's {role} "
                    f"(labels {found}); remove or rename it (`docker rm -f {name}`), then run `pulumi up` again"
                )
            pulumi.log.warn(
                f"{name}: removing the container an interrupted `pulumi up` left ({container.short_id}); "
                "its volumes stay"
            )
            _settle(container)
            container.stop(timeout=grace_seconds)
            _remove(container)

    return pulumi.ResourceHook(f"remove-leftover-{name}", before_create)

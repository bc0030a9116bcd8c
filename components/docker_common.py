"""Shared pieces of every container this program declares (not a component itself).

Keeps restart policy, log rotation, labels, healthchecks and replacement options identical across
services, so the behaviour an operator relies on is declared once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker

from components.naming import Naming

RESTART_POLICY = "unless-stopped"
# Rotate container logs: a camera app logs a lot and an unbounded json-file log fills the disk.
LOG_DRIVER = "json-file"
LOG_OPTS = {"max-size": "10m", "max-file": "3"}


@dataclass(frozen=True)
class Healthcheck:
    """A Docker healthcheck; durations are Docker duration strings such as `3s`."""

    test: tuple[str, ...]
    """The command, starting with `CMD`."""
    interval: str
    """Time between two probes (dockerd 20.10 has no faster start interval)."""
    timeout: str
    """Time after which one probe counts as failed."""
    retries: int
    """Consecutive failures before the container is unhealthy."""
    start_period: str
    """Grace period at start during which failures do not count."""

    def args(self) -> docker.ContainerHealthcheckArgs:
        """Return the pulumi-docker form."""
        return docker.ContainerHealthcheckArgs(
            tests=list(self.test),
            interval=self.interval,
            timeout=self.timeout,
            retries=self.retries,
            start_period=self.start_period,
        )


def container_labels(labels: dict[str, str]) -> list[docker.ContainerLabelArgs]:
    """Return labels in pulumi-docker's container form, sorted for a stable diff."""
    return [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(labels.items())]


def volume_labels(labels: dict[str, str]) -> list[docker.VolumeLabelArgs]:
    """Return labels in pulumi-docker's volume form, sorted for a stable diff."""
    return [docker.VolumeLabelArgs(label=k, value=v) for k, v in sorted(labels.items())]


def network_labels(labels: dict[str, str]) -> list[docker.NetworkLabelArgs]:
    """Return labels in pulumi-docker's network form, sorted for a stable diff."""
    return [docker.NetworkLabelArgs(label=k, value=v) for k, v in sorted(labels.items())]


def retained_volume(
    logical_name: str, physical_name: str, labels: dict[str, str], *, parent: pulumi.Resource, protect: bool
) -> docker.Volume:
    """Declare a named volume that no `pulumi destroy` or replacement ever deletes."""
    return docker.Volume(
        logical_name,
        name=physical_name,
        labels=volume_labels(labels),
        opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=True, protect=protect),
    )


def local_image(logical_name: str, reference: str, *, parent: pulumi.Resource) -> docker.RemoteImage:
    """Declare an image kept on the host; containers use its `image_id`, not the tag.

    Using the tag makes pulumi-docker replace the container on every run; the id changes only when the
    image really changes.
    """
    return docker.RemoteImage(
        logical_name,
        name=reference,
        keep_locally=True,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def service_container(
    logical_name: str,
    *,
    naming: Naming,
    role: str,
    grace_seconds: int,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
    **args: Any,
) -> docker.Container:
    """Declare a container with the policy every service shares; `args` are its own settings.

    Shared: the physical name and labels of its role, restart `unless-stopped`, rotated logs, a stop
    grace period on replacement and destroy (pulumi-docker otherwise removes it with SIGKILL), and
    delete-before-replace (creating the new one first fails with "name already in use" or "port is
    already allocated").
    """
    return docker.Container(
        logical_name,
        name=naming.physical_name(role),
        labels=container_labels(naming.labels(role)),
        restart=RESTART_POLICY,
        stop_timeout=grace_seconds,
        destroy_grace_seconds=grace_seconds,
        log_driver=LOG_DRIVER,
        log_opts=LOG_OPTS,
        opts=pulumi.ResourceOptions(parent=parent, delete_before_replace=True, depends_on=list(depends_on)),
        **args,
    )


def secret_env(items: Sequence[pulumi.Input[str]]) -> pulumi.Output[list[str]]:
    """Return an env list marked secret as a whole: any of its entries may hold a password or key."""
    return pulumi.Output.secret(pulumi.Output.all(*items))

"""Shared pieces of every container this program declares (not a component itself).

Keeps restart policy, log rotation, labels, healthchecks, images and replacement options identical across
services, so the behaviour an operator relies on is declared once, in the form pulumi-docker reads back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker

from components.leftovers import remove_leftover
from components.naming import Naming

RESTART_POLICY = "unless-stopped"
# Docker's `local` log driver rotates by itself (5 files of 20 MB, compressed). Declaring no `log_opts`
# matters: the provider reads them back from the container, dockerd merges daemon.json's `log-opts` into
# them when the driver matches, and the field is force-new, so any declared options would replace every
# container on every run on such a host.
LOG_DRIVER = "local"
# Every container: any change, and a create whose `wait` failed (an init error), replaces it. Without
# "*", the engine turns a failed wait into an empty update on the next run and starts the dependants.
REPLACE_ON_ANY_CHANGE = ("*",)
_SECONDS_PER_MINUTE = 60
_MILLIS_PER_SECOND = 1000
# How often a waiting first probe checks readiness inside the container (no exec per check).
PROBE_POLL_SECONDS = 0.2
# When a waiting healthcheck's first probe starts: a service ready within a second is reported before the
# provider's second inspect of `wait`, one second after the start.
FIRST_PROBE_DELAY_SECONDS = 0.5
_SECONDS_PER_HOUR = 3600
# `name:tag` or `name` (no digest): the part before the tag, and the tag.
_TAG = re.compile(r"^(?P<repository>.+?)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?$")


def go_duration(seconds: float) -> str:
    """Render seconds as Go's `time.Duration.String()` does, the provider's read-back.

    `60` -> `1m0s`, `0.5` -> `500ms`, `1.5` -> `1.5s`; whole milliseconds only.
    """
    millis = round(seconds * _MILLIS_PER_SECOND)
    if 0 < millis < _MILLIS_PER_SECOND:
        return f"{millis}ms"
    hours, rest = divmod(millis, _SECONDS_PER_HOUR * _MILLIS_PER_SECOND)
    minutes, rest = divmod(rest, _SECONDS_PER_MINUTE * _MILLIS_PER_SECOND)
    whole, fraction = divmod(rest, _MILLIS_PER_SECOND)
    secs = f"{whole}.{fraction:03d}".rstrip("0") + "s" if fraction else f"{whole}s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    if minutes:
        return f"{minutes}m{secs}"
    return secs


@dataclass(frozen=True)
class Healthcheck:
    """A Docker healthcheck; durations in seconds (whole milliseconds)."""

    test: tuple[str, ...]
    """The command, starting with `CMD` or `CMD-SHELL`."""
    interval: float
    """Seconds from the end of one probe to the start of the next, and before the first (dockerd 20.10 has
    no start interval)."""
    timeout: float
    """Seconds after which one probe counts as failed."""
    retries: int
    """Consecutive failures before the container is unhealthy."""
    start_period: int
    """Grace period at start during which failures do not count."""

    def args(self) -> docker.ContainerHealthcheckArgs:
        """Return the pulumi-docker form, durations as the provider reads them back (no diff on the next run)."""
        return docker.ContainerHealthcheckArgs(
            tests=list(self.test),
            interval=go_duration(self.interval),
            timeout=go_duration(self.timeout),
            retries=self.retries,
            start_period=go_duration(self.start_period),
        )


def shell_poll(ready: str, wait_seconds: float) -> str:
    """Shell that runs `ready` every PROBE_POLL_SECONDS until it succeeds, failing after `wait_seconds`."""
    polls = round(wait_seconds / PROBE_POLL_SECONDS)
    return f'n=0; until {ready}; do n=$((n + 1)); [ "$n" -gt {polls} ] && exit 1; sleep {PROBE_POLL_SECONDS}; done'


def waiting_healthcheck(
    wait: str,
    *,
    marker: str,
    check: str,
    steady_seconds: float,
    timeout: float,
    retries: int,
    start_period: float,
    first: str = "true",
) -> Healthcheck:
    """A `CMD-SHELL` healthcheck whose first probe waits inside the container until the service is ready.

    dockerd 20.10 has no start interval: the first probe runs one `interval` after start, and each next
    one an interval after the previous ended, every probe an exec (65 ms of engine CPU each, see
    `benchmarks/probes.py`). Here the first probe starts FIRST_PROBE_DELAY_SECONDS after the container and
    runs `wait` (a command that returns once the service is ready, non-zero when it gives up, e.g.
    `shell_poll`), so it reports healthy as soon as the service is, without a short interval for the
    container's whole life; then `first` runs. Once it has, `marker` exists and every later probe sleeps
    first and then runs `check`: one check every `steady_seconds`. `timeout` must exceed both the wait
    and a later probe's sleep plus check (a probe past its timeout counts as failed).
    """
    later = f"sleep {steady_seconds - FIRST_PROBE_DELAY_SECONDS:g}; {check}"
    return Healthcheck(
        test=("CMD-SHELL", f"if [ -f {marker} ]; then {later}; exit; fi; {wait} || exit 1; touch {marker}; {first}"),
        interval=FIRST_PROBE_DELAY_SECONDS,
        timeout=timeout,
        retries=retries,
        start_period=start_period,
    )


def published_ports(ports: Sequence[int], bind_address: str) -> list[docker.ContainerPortArgs]:
    """Publish each port on `bind_address`, on the same number inside, one binding each, sorted.

    dockerd 20.10 publishes `0.0.0.0` on IPv4 only and `::` on IPv6 only. Both families on one port
    would take two bindings, and those cannot be declared stably: dockerd reads two bindings of one port
    back in the reverse order and the provider compares the force-new list by position, so the container
    would be replaced on every run (measured; see docs/configuration.md, IPv4 and IPv6).
    """
    return [docker.ContainerPortArgs(internal=port, external=port, ip=bind_address) for port in sorted(ports)]


def container_labels(labels: dict[str, str]) -> list[docker.ContainerLabelArgs]:
    """Return labels in pulumi-docker's container form, sorted for a stable diff."""
    return [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(labels.items())]


def volume_labels(labels: dict[str, str]) -> list[docker.VolumeLabelArgs]:
    """Return labels in pulumi-docker's volume form, sorted for a stable diff."""
    return [docker.VolumeLabelArgs(label=k, value=v) for k, v in sorted(labels.items())]


def network_labels(labels: dict[str, str]) -> list[docker.NetworkLabelArgs]:
    """Return labels in pulumi-docker's network form, sorted for a stable diff."""
    return [docker.NetworkLabelArgs(label=k, value=v) for k, v in sorted(labels.items())]


def data_volume(
    logical_name: str,
    physical_name: str,
    labels: dict[str, str],
    *,
    parent: pulumi.Resource | None,
    keep: bool,
    depends_on: Sequence[pulumi.Resource] = (),
) -> docker.Volume:
    """Declare a named volume that shares the fate of the secrets that unlock its data.

    `keep` (protectData): protected and retained on delete, so neither `destroy` nor a replacement removes
    it. Without it the stack is disposable: `destroy` deletes the volume together with the generated
    secrets, instead of leaving data behind that the next deploy's new secrets cannot open.
    """
    return docker.Volume(
        logical_name,
        name=physical_name,
        labels=volume_labels(labels),
        opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=keep, protect=keep, depends_on=list(depends_on)),
    )


def image_name(reference: str, *, follow_registry: bool, parent: pulumi.Resource) -> pulumi.Input[str]:
    """The name to pull: the reference itself, or its tag resolved to the registry's current digest.

    pulumi-docker keeps a local copy of a tag and, finding it, never pulls again (not even when
    `pull_triggers` change); a `repository@sha256:...` name that changes with the registry's digest makes
    the next `pulumi up` pull the new image and replace the containers that use it.
    """
    if not follow_registry or "@" in reference:
        return reference
    repository = _TAG.match(reference).group("repository")  # type: ignore[union-attr]  # always matches
    digest = docker.get_registry_image_output(name=reference, opts=pulumi.InvokeOutputOptions(parent=parent))
    return digest.sha256_digest.apply(lambda sha: f"{repository}@{sha}")


def local_image(
    logical_name: str,
    reference: str,
    *,
    follow_registry: bool,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
) -> docker.RemoteImage:
    """Declare an image kept on the host; containers use its `image_id`, which changes only with the image."""
    return docker.RemoteImage(
        logical_name,
        name=image_name(reference, follow_registry=follow_registry, parent=parent),
        keep_locally=True,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on)),
    )


def service_container(
    logical_name: str,
    *,
    naming: Naming,
    role: str,
    grace_seconds: int,
    parent: pulumi.Resource,
    depends_on: Sequence[pulumi.Resource] = (),
    restart: str = RESTART_POLICY,
    ignore_changes: Sequence[str] = (),
    **args: Any,
) -> docker.Container:
    """Declare a container with the policy every service shares; `args` are its own settings.

    Shared: the physical name and labels of its role, a restart policy, rotated logs, a stop grace period
    on replacement and destroy (pulumi-docker otherwise removes it with SIGKILL), delete-before-replace
    (creating the new one first fails with "name already in use" or "port is already allocated"),
    replacement on any change or failed create, and the removal of a leftover of an interrupted `up`
    before the create (`components/leftovers.py`).
    """
    return docker.Container(
        logical_name,
        name=naming.physical_name(role),
        labels=container_labels(naming.labels(role)),
        restart=restart,
        stop_timeout=grace_seconds,
        destroy_grace_seconds=grace_seconds,
        log_driver=LOG_DRIVER,
        opts=pulumi.ResourceOptions(
            parent=parent,
            delete_before_replace=True,
            replace_on_changes=list(REPLACE_ON_ANY_CHANGE),
            depends_on=list(depends_on),
            ignore_changes=list(ignore_changes),
            hooks=pulumi.ResourceHookBinding(before_create=[remove_leftover(naming, role, grace_seconds)]),
        ),
        **args,
    )


def secret_env(items: Sequence[pulumi.Input[str]]) -> pulumi.Output[list[str]]:
    """Return an env list marked secret as a whole: any of its entries may hold a password or key."""
    return pulumi.Output.secret(pulumi.Output.all(*items))

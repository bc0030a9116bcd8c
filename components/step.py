"""A one-shot step that must succeed before anything that depends on it changes.

Schema gates, data copies, `ALTER ROLE`, version checks: each runs once per change of its inputs and,
when it fails, stops `pulumi up` with the old deployment still serving. pulumi-docker has no such
resource (`attach` with `must_run: false` only records an exit code and never fails the update, and an
unchanged job never runs again), so a step is a container built on what the provider does enforce:

Creates:
- `<name>-container`: runs `script` with `sh -c` in `image`, its output written to `<log_dir>/<role>.log`
  on one of its volumes. On success it marks itself done and idles: its healthcheck turns healthy and the
  provider's `wait` returns, so dependants (`depends_on`) proceed. The healthcheck's first probe waits
  for the marker inside one exec, so "healthy" follows "done" within a fraction of a second (dockerd
  20.10 has no start interval, and starts the next probe one interval after the previous one ended);
  once it has reported, each probe idles for minutes, so a finished step costs the engine one exec per
  `PROBE_IDLE_SECONDS` instead of one per interval for as long as it exists. On failure it exits, and
  being created with `rm` it is removed at once: the provider's `wait` fails on its next inspect
  (instead of polling until the timeout), the create becomes an init error and the engine stops before
  any dependant.
  Every container carries `replaceOnChanges: ["*"]`, so the next `pulumi up` replaces the failed step,
  which runs it again; a step whose inputs (image id, script, environment) change also runs again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.docker_common import (
    FIRST_PROBE_DELAY_SECONDS,
    secret_env,
    service_container,
    shell_poll,
    waiting_healthcheck,
)
from components.naming import Naming

DONE_MARKER = "/tmp/argusai-step.done"  # noqa: S108 - inside the step's own container
STOP_GRACE_SECONDS = 5
DEFAULT_TIMEOUT_SECONDS = 600
# Runs `$1` (the step's script), its output into the log file; done: mark and idle until stopped.
WRAPPER = (
    'log="$STEP_LOG"; mkdir -p "$(dirname "$log")"; '
    'if sh -c "$1" >"$log.partial" 2>&1; then '
    f'mv "$log.partial" "$log"; touch "${{STEP_DONE:-{DONE_MARKER}}}"; '
    "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done; "
    'else status=$?; mv "$log.partial" "$log"; cat "$log"; exit "$status"; fi'
)
# The first probe reports healthy as soon as the step is done; later ones idle for minutes before
# confirming (a finished step has nothing left to check). One that saw no marker within
# PROBE_WAIT_SECONDS fails and the next begins half a second later: the provider only stops early on
# healthy, so a long step just keeps it waiting until the step's timeout.
PROBE_IDLE_SECONDS = 300
PROBE_WAIT_SECONDS = 60
HEALTHCHECK = waiting_healthcheck(
    shell_poll(f'[ -f "${{STEP_DONE:-{DONE_MARKER}}}" ]', PROBE_WAIT_SECONDS),
    marker=f'"${{STEP_DONE:-{DONE_MARKER}}}.reported"',
    check="true",
    # Each later probe idles PROBE_IDLE_SECONDS (after the half-second interval) before confirming.
    steady_seconds=PROBE_IDLE_SECONDS + FIRST_PROBE_DELAY_SECONDS,
    # Longer than either kind of probe.
    timeout=PROBE_IDLE_SECONDS + PROBE_WAIT_SECONDS,
    retries=1,
    start_period=0,
)


@dataclass(frozen=True)
class StepArgs:
    """Inputs of Step."""

    naming: Naming
    """Physical names and labels."""
    role: str
    """Role of the step, e.g. `schema-gate`: its container's name and its log file's."""
    image: pulumi.Input[str]
    """Image id to run the script in (it needs `sh`, `test` and a `sleep` that takes fractions)."""
    script: str
    """Shell script; exit status 0 is success."""
    volumes: Sequence[docker.ContainerVolumeArgs]
    """Volumes the script works on; one of them keeps the log."""
    log_dir: str
    """Directory for the step's log on one of `volumes` (the container itself is removed when it fails)."""
    env: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    """Environment as NAME=value entries (the list is marked secret)."""
    user: str | None = None
    """User to run as (None: the image's own)."""
    networks: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    """Networks to join; none means no network at all."""
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    """How long the script may take."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """Resources that must be ready first."""
    files: Sequence[docker.ContainerUploadArgs] = field(default_factory=tuple)
    """Files uploaded into the container before it starts (e.g. a database server's CA certificate)."""


class Step(pulumi.ComponentResource):
    """One one-shot step; `container` is what dependants put in their `depends_on`."""

    container: docker.Container

    def __init__(self, name: str, args: StepArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare the step's container."""
        super().__init__("argusai:step:Step", name, None, opts)
        log_file = f"{args.log_dir}/{args.role}.log"
        self.container = service_container(
            f"{name}-container",
            naming=args.naming,
            role=args.role,
            grace_seconds=STOP_GRACE_SECONDS,
            parent=self,
            depends_on=args.depends_on,
            # Removed when it exits: a failed step fails the provider's wait at once. (Docker refuses a
            # restart policy together with auto-remove.)
            restart="no",
            rm=True,
            image=args.image,
            user=args.user,
            entrypoints=["sh", "-c", WRAPPER, args.role, args.script],
            envs=secret_env([*args.env, f"STEP_LOG={log_file}"]),
            volumes=list(args.volumes),
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=n) for n in args.networks] or None,
            network_mode=None if args.networks else "none",
            uploads=list(args.files) or None,
            healthcheck=HEALTHCHECK.args(),
            wait=True,
            wait_timeout=args.timeout_seconds,
        )
        self.register_outputs({"container": self.container.name})

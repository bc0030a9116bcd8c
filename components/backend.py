"""The ArgusAI backend (FastAPI; the release creates its tables at start-up with `create_all`).

Creates:
- `<name>-data`: named volume at /app/data (holds the SQLite file in the default mode); protected and
  retained with `protectData`.
- `<name>-image`: the backend image, kept locally.
- `<name>-container`: the backend, alias `backend` on the app network (and on the database network in
  PostgreSQL mode), reached through the proxy (no port of its own), healthy when `/health` answers. It
  serves only after what its mode needs (PostgreSQL, the driver, the release's steps) succeeded: created
  after them, or (an ArgusAI release on a new stack) created early and waiting for them itself
  (`components/backend_start.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.docker_common import (
    PROBE_POLL_SECONDS,
    data_volume,
    local_image,
    secret_env,
    service_container,
    waiting_healthcheck,
)
from components.naming import Naming


@dataclass(frozen=True)
class Serving:
    """What must succeed before a backend image serves, and how its container waits for it."""

    prerequisites: Sequence[pulumi.Resource]
    """What must succeed before it serves (the database, the driver, the release's steps)."""
    waits_for: Sequence[pulumi.Resource]
    """What the container's creation waits for: `prerequisites`, or less when the container waits itself."""
    env: Sequence[pulumi.Input[str]] = ()
    """Environment besides `BackendArgs.env` (PYTHONPATH, what the container waits for)."""
    entrypoints: Sequence[str] | None = None
    """The command run instead of the image's own (None: the image's)."""
    uploads: Sequence[docker.ContainerUploadArgs] = ()
    """Files that command needs."""


def python_path_env(directories: Sequence[str]) -> str:
    """The backend image's PYTHONPATH entry: the release's own directory first, then `directories`."""
    return f"PYTHONPATH={':'.join([APP_DIR, *directories])}"


#: Declares what must succeed before a backend image serves, given its image id and the data volume.
GateFactory = Callable[[pulumi.Input[str], docker.Volume], Serving]
ALIAS = "backend"
PORT = 8000
#: The release's own directory (its Dockerfile's WORKDIR and PYTHONPATH) and its data under it.
APP_DIR = "/app"
DATA_PATH = f"{APP_DIR}/data"

STOP_GRACE_SECONDS = 15
# Migrations run before the server answers; allow for a slow first start.
WAIT_TIMEOUT_SECONDS = 180
# The backend image is Python: probe with it rather than assume curl is installed. One Python process
# per probe, the code inlined in the shell (a healthcheck has no environment of its own): single quotes
# only, no `$`, so the shell's double quotes pass it unchanged.
_HEALTHY = (
    "import time, urllib.request\n"
    "def healthy():\n"
    "    try:\n"
    f"        return urllib.request.urlopen('http://127.0.0.1:{PORT}/health', timeout=4).status == 200\n"
    "    except OSError:\n"
    "        return False\n"
)
PROBE_CHECK = _HEALTHY + "raise SystemExit(0 if healthy() else 1)\n"
FIRST_PROBE_WAIT_SECONDS = 60
PROBE_WAIT = (
    _HEALTHY
    + f"end = time.monotonic() + {FIRST_PROBE_WAIT_SECONDS}\n"
    + "while not healthy():\n"
    + "    if time.monotonic() > end:\n"
    + "        raise SystemExit(1)\n"
    + f"    time.sleep({PROBE_POLL_SECONDS})\n"
)
READY_MARKER = "/tmp/argusai-healthy.reported"  # noqa: S108 - inside the backend's container
# The steady rate: each probe starts a Python process (plus the engine's exec), so not every few seconds.
STEADY_PROBE_SECONDS = 15
# The first probe, half a second after start, polls /health in one Python process until it answers (the
# release takes 15-20 s to import): healthy within 0.2 s of serving. Later probes sleep first, one check
# every STEADY_PROBE_SECONDS; three failures in a row (45 s) make it unhealthy.
HEALTHCHECK = waiting_healthcheck(
    f'python -c "{PROBE_WAIT}"',
    marker=READY_MARKER,
    check=f'python -c "{PROBE_CHECK}"',
    steady_seconds=STEADY_PROBE_SECONDS,
    # Above the first probe's own wait, so a slow first start is not cut off as a failed probe.
    timeout=FIRST_PROBE_WAIT_SECONDS + STEADY_PROBE_SECONDS,
    retries=3,
    start_period=60,
)


@dataclass(frozen=True)
class BackendArgs:
    """Inputs of Backend."""

    naming: Naming
    """Physical names and labels."""
    image: str
    """Backend image reference."""
    env: Sequence[pulumi.Input[str]]
    """Environment as NAME=value entries, DATABASE_URL and keys included (the list is marked secret)."""
    app_network: pulumi.Input[str]
    """The app network (alias `backend`): the proxy reaches it there (it publishes no port of its own)."""
    protect_data: bool
    """Protect and retain the data volume (false: a disposable stack; destroy deletes it)."""
    follow_registry: bool
    """Resolve the image tag to the registry's current digest."""
    db_network: pulumi.Input[str] | None = None
    """The internal database network, in PostgreSQL mode."""
    files: Sequence[docker.ContainerUploadArgs] = field(default_factory=tuple)
    """Files uploaded into the container before it starts (a database server's CA certificate)."""
    volumes: Sequence[docker.ContainerVolumeArgs] = field(default_factory=tuple)
    """Volumes besides the data volume (a PostgreSQL driver the image lacks, read-only)."""
    before_serving: GateFactory | None = None
    """Declares what must succeed before this image serves (the database, the driver, the release's steps)
    and how the container waits for it, given the image id and the data volume (None: nothing)."""


class Backend(pulumi.ComponentResource):
    """The backend container and its data volume."""

    container: docker.Container
    image: docker.RemoteImage
    volume: docker.Volume
    prerequisites: list[pulumi.Resource]
    """What must succeed before the backend serves (the database, the driver, the release's steps): what
    replaces any other part of this version waits for them too, and starts beside the backend, a stack they
    stop left as it was."""

    def __init__(self, name: str, args: BackendArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare volume, image and container."""
        super().__init__("argusai:backend:Backend", name, None, opts)
        naming = args.naming
        self.volume = data_volume(
            f"{name}-data", naming.physical_name("data"), naming.labels("data"), parent=self, keep=args.protect_data
        )
        self.image = local_image(f"{name}-image", args.image, follow_registry=args.follow_registry, parent=self)
        serving = args.before_serving(self.image.image_id, self.volume) if args.before_serving else Serving((), ())
        self.prerequisites = list(serving.prerequisites)
        networks = [docker.ContainerNetworksAdvancedArgs(name=args.app_network, aliases=[ALIAS])]
        if args.db_network is not None:
            networks.append(docker.ContainerNetworksAdvancedArgs(name=args.db_network, aliases=[ALIAS]))
        self.container = service_container(
            f"{name}-container",
            naming=naming,
            role="backend",
            grace_seconds=STOP_GRACE_SECONDS,
            parent=self,
            depends_on=serving.waits_for,
            image=self.image.image_id,
            envs=secret_env([*args.env, *serving.env]),
            volumes=[
                docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=DATA_PATH),
                *args.volumes,
            ],
            networks_advanced=networks,
            entrypoints=list(serving.entrypoints) if serving.entrypoints else None,
            uploads=[*args.files, *serving.uploads] or None,
            healthcheck=HEALTHCHECK.args(),
            wait=True,
            wait_timeout=WAIT_TIMEOUT_SECONDS,
        )
        self.register_outputs({"container": self.container.name, "volume": self.volume.name})

    @property
    def address(self) -> str:
        """Where the app network reaches the backend (`host:port`)."""
        return f"{ALIAS}:{PORT}"

    @property
    def url(self) -> str:
        """The backend's URL on the app network."""
        return f"http://{self.address}"

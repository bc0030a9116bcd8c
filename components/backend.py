"""The ArgusAI backend (FastAPI; the release creates its tables at start-up with `create_all`).

Creates:
- `<name>-data`: named volume at /app/data (holds the SQLite file in the default mode); protected and
  retained with `protectData`.
- `<name>-image`: the backend image, kept locally.
- `<name>-container`: the backend, alias `backend` on the app network (and on the database network in
  PostgreSQL mode), publishing its port on the chosen host address, healthy when `/health` answers, and
  created only after PostgreSQL is healthy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.docker_common import (
    Healthcheck,
    data_volume,
    local_image,
    published_ports,
    secret_env,
    service_container,
)
from components.naming import Naming

ALIAS = "backend"
PORT = 8000
DATA_PATH = "/app/data"

STOP_GRACE_SECONDS = 15
# Migrations run before the server answers; allow for a slow first start.
WAIT_TIMEOUT_SECONDS = 180
# The backend image is Python: probe with it rather than assume curl is installed.
HEALTHCHECK = Healthcheck(
    test=(
        "CMD",
        "python",
        "-c",
        "import sys, urllib.request; "
        f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{PORT}/health', timeout=4).status == 200 else 1)",
    ),
    interval=3,
    timeout=5,
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
    """The app network (alias `backend`)."""
    host_port: int
    """Host port that publishes port 8000."""
    bind_address: str
    """Host address the port is published on (`::`: every IPv4 and IPv6 address)."""
    protect_data: bool
    """Protect and retain the data volume (false: a disposable stack; destroy deletes it)."""
    follow_registry: bool
    """Resolve the image tag to the registry's current digest."""
    db_network: pulumi.Input[str] | None = None
    """The internal database network, in PostgreSQL mode."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """Resources that must be ready first (the PostgreSQL container)."""
    gate: Callable[[pulumi.Input[str], docker.Volume], Sequence[pulumi.Resource]] | None = None
    """Declares what must succeed before this image serves (the schema gate), given the image id and the
    data volume; the container depends on what it returns."""


class Backend(pulumi.ComponentResource):
    """The backend container and its data volume."""

    container: docker.Container
    image: docker.RemoteImage
    volume: docker.Volume

    def __init__(self, name: str, args: BackendArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare volume, image and container."""
        super().__init__("argusai:backend:Backend", name, None, opts)
        naming = args.naming
        self.volume = data_volume(
            f"{name}-data", naming.physical_name("data"), naming.labels("data"), parent=self, keep=args.protect_data
        )
        self.image = local_image(f"{name}-image", args.image, follow_registry=args.follow_registry, parent=self)
        before_serving = list(args.gate(self.image.image_id, self.volume)) if args.gate else []
        networks = [docker.ContainerNetworksAdvancedArgs(name=args.app_network, aliases=[ALIAS])]
        if args.db_network is not None:
            networks.append(docker.ContainerNetworksAdvancedArgs(name=args.db_network, aliases=[ALIAS]))
        self.container = service_container(
            f"{name}-container",
            naming=naming,
            role="backend",
            grace_seconds=STOP_GRACE_SECONDS,
            parent=self,
            depends_on=[*args.depends_on, *before_serving],
            image=self.image.image_id,
            envs=secret_env(args.env),
            volumes=[docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=DATA_PATH)],
            networks_advanced=networks,
            ports=published_ports(PORT, args.host_port, args.bind_address),
            healthcheck=HEALTHCHECK.args(),
            wait=True,
            wait_timeout=WAIT_TIMEOUT_SECONDS,
        )
        self.register_outputs({"container": self.container.name, "volume": self.volume.name})

"""The ArgusAI frontend (Next.js), when enabled.

Creates:
- `<name>-image`: the frontend image, kept locally.
- `<name>-container`: the frontend on the app network, BACKEND_URL pointing at the backend's alias,
  publishing its port on the chosen host address, healthy when its page answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.docker_common import (
    Healthcheck,
    local_image,
    published_ports,
    service_container,
)
from components.naming import Naming

ALIAS = "frontend"
PORT = 3000
STOP_GRACE_SECONDS = 10
WAIT_TIMEOUT_SECONDS = 120
# The frontend image is Node.js: probe with node itself rather than assume curl or wget.
HEALTHCHECK = Healthcheck(
    test=(
        "CMD",
        "node",
        "-e",
        f"fetch('http://127.0.0.1:{PORT}/').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))",
    ),
    interval=5,
    timeout=5,
    retries=3,
    start_period=30,
)


@dataclass(frozen=True)
class FrontendArgs:
    """Inputs of Frontend."""

    naming: Naming
    """Physical names and labels."""
    image: str
    """Frontend image reference."""
    backend_url: str
    """URL the frontend's server side uses to reach the backend."""
    app_network: pulumi.Input[str]
    """The app network."""
    host_port: int | None
    """Host port that publishes port 3000, or None (reached only through the proxy)."""
    bind_address: str
    """Host address the port is published on (`::`: every IPv4 and IPv6 address)."""
    follow_registry: bool
    """Resolve the image tag to the registry's current digest."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """Resources that must be ready first (the backend container)."""


class Frontend(pulumi.ComponentResource):
    """The frontend container."""

    container: docker.Container
    image: docker.RemoteImage

    def __init__(self, name: str, args: FrontendArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare image and container."""
        super().__init__("argusai:frontend:Frontend", name, None, opts)
        naming = args.naming
        self.image = local_image(f"{name}-image", args.image, follow_registry=args.follow_registry, parent=self)
        self.container = service_container(
            f"{name}-container",
            naming=naming,
            role="frontend",
            grace_seconds=STOP_GRACE_SECONDS,
            parent=self,
            depends_on=args.depends_on,
            image=self.image.image_id,
            envs=[f"BACKEND_URL={args.backend_url}"],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.app_network, aliases=[ALIAS])],
            ports=published_ports(PORT, args.host_port, args.bind_address) if args.host_port else None,
            healthcheck=HEALTHCHECK.args(),
            wait=True,
            wait_timeout=WAIT_TIMEOUT_SECONDS,
        )
        self.register_outputs({"container": self.container.name})

    @property
    def address(self) -> str:
        """Where the app network reaches the frontend (`host:port`)."""
        return f"{ALIAS}:{PORT}"

"""The ports the backend and the frontend used to publish, kept for what still uses them (plain HTTP only).

Creates:
- `<name>-container`: Caddy in the proxy's image, on the app network, publishing the old backend port (the
  API, for API clients) and the old frontend port (a redirect to the app, for bookmarks) on the chosen host
  address, with the configuration it is given; healthy when its admin endpoint answers.

Why a container of its own: the proxy in front starts beside the backend, as soon as what the backend waits
for succeeded, and serves the app as soon as the backend answers. These ports were the backend's and the
frontend's own on stacks from before the proxy, so whatever takes them must wait until both were replaced
without them, after the backend's start; and a published port cannot be added to a running container.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.docker_common import published_ports, service_container
from components.https.proxy import CADDYFILE_PATH, HEALTHCHECK, STOP_GRACE_SECONDS, WAIT_TIMEOUT_SECONDS
from components.naming import Naming

ROLE = "old-ports"


@dataclass(frozen=True)
class OldPortsArgs:
    """Inputs of OldPorts."""

    naming: Naming
    """Physical names and labels."""
    image: pulumi.Input[str]
    """The proxy's image id."""
    config: str
    """The whole Caddyfile."""
    ports: Sequence[int]
    """Host ports to publish, each on the same port in the container."""
    app_network: pulumi.Input[str]
    """The app network."""
    bind_address: str
    """Host address the ports are published on."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What held these ports before (the backend, the frontend, the proxy in front): they are free after it."""


class OldPorts(pulumi.ComponentResource):
    """The old ports' container."""

    container: docker.Container

    def __init__(self, name: str, args: OldPortsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare the container."""
        super().__init__("argusai:proxy:OldPorts", name, None, opts)
        self.container = service_container(
            f"{name}-container",
            naming=args.naming,
            role=ROLE,
            grace_seconds=STOP_GRACE_SECONDS,
            parent=self,
            depends_on=args.depends_on,
            image=args.image,
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.app_network)],
            ports=published_ports(args.ports, args.bind_address),
            uploads=[docker.ContainerUploadArgs(file=CADDYFILE_PATH, content=args.config)],
            healthcheck=HEALTHCHECK.args(),
            wait=True,
            wait_timeout=WAIT_TIMEOUT_SECONDS,
        )
        self.register_outputs({"container": self.container.name})

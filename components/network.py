"""Docker networks of one stack.

Creates:
- `<name>-app`: bridge network for the backend and the frontend (has a route out, for AI providers).
- `<name>-db` (PostgreSQL mode only): bridge network with `internal: true` holding only postgres, the
  backend and the backup; the engine drops whatever leaves its subnet (the host itself stays reachable
  through the bridge gateway on dockerd 20.10), and postgres publishes no port.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.docker_common import network_labels
from components.naming import Naming

DRIVER = "bridge"
APP_ROLE = "app"


def app_network_name(naming: Naming) -> str:
    """The app network's name on the Docker host."""
    return naming.physical_name(APP_ROLE)


@dataclass(frozen=True)
class NetworksArgs:
    """Inputs of Networks."""

    naming: Naming
    """Physical names and labels."""
    database_network: bool
    """Whether to create the internal database network."""


class Networks(pulumi.ComponentResource):
    """The app network and, in PostgreSQL mode, the internal database network."""

    app: docker.Network
    db: docker.Network | None

    def __init__(self, name: str, args: NetworksArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare the networks."""
        super().__init__("argusai:network:Networks", name, None, opts)
        # Fixed names: a replacement must remove the old network before creating the new one.
        child = pulumi.ResourceOptions(parent=self, delete_before_replace=True)
        self.app = docker.Network(
            f"{name}-app",
            name=app_network_name(args.naming),
            driver=DRIVER,
            labels=network_labels(args.naming.labels(APP_ROLE)),
            opts=child,
        )
        self.db = None
        if args.database_network:
            self.db = docker.Network(
                f"{name}-db",
                name=args.naming.physical_name("db"),
                driver=DRIVER,
                internal=True,
                labels=network_labels(args.naming.labels("db")),
                opts=child,
            )
        self.register_outputs({"app": self.app.name, "db": self.db.name if self.db else None})

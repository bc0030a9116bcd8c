"""PostgreSQL for one stack: the server container on the internal database network.

The backend joins that network and is created only once PostgreSQL is healthy; backups with `pg_dump`
from the PostgreSQL image (the server's own major version), with libpq settings from the same values as
the URL.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.database.base import ServerMode, postgres_component
from components.database.postgres_server import ALIAS as POSTGRES_ALIAS
from components.database.postgres_server import PORT as POSTGRES_PORT
from components.database.postgres_server import Postgres
from components.network import Networks
from components.secrets import AppSecrets
from components.settings import DatabaseKind, Settings


class PostgresMode(ServerMode):
    """PostgreSQL: a server container on the internal database network."""

    kind = DatabaseKind.POSTGRES
    uses_database_network = True

    @classmethod
    def declare(
        cls, settings: Settings, secrets: AppSecrets, networks: Networks, backups: docker.Volume
    ) -> PostgresMode:
        """The server, on the database network."""
        if networks.db is None:
            raise ValueError("PostgreSQL mode needs the database network")
        return cls(postgres_component(settings, secrets, networks.db, backups), networks, settings, secrets, backups)

    def __init__(
        self, postgres: Postgres, networks: Networks, settings: Settings, secrets: AppSecrets, backups: docker.Volume
    ) -> None:
        """Wrap the running server; libpq settings come from the same values as its URL."""
        if postgres.container is None or postgres.image is None or networks.db is None:
            raise ValueError("PostgresMode needs the PostgreSQL server and the database network declared")
        network = networks.db
        super().__init__(
            postgres,
            settings,
            secrets,
            # The server's own image: its pg_dump always matches the server.
            tools_image_id=postgres.image.image_id,
            libpq_env=[
                f"PGHOST={POSTGRES_ALIAS}",
                f"PGPORT={POSTGRES_PORT}",
                f"PGUSER={settings.postgres.user}",
                f"PGDATABASE={settings.postgres.db}",
                pulumi.Output.concat("PGPASSWORD=", secrets.postgres_password),
            ],
            network=network.name,
            app_network=networks.app.name,
            # Ready once it answers with the stack's password.
            ready=postgres.ready,
            backups=backups,
        )
        self.network = network

    @property
    def _server_env(self) -> list[pulumi.Input[str]]:
        """The server's image id: after a new server (a major upgrade above all), the gate checks the schema."""
        image = self.postgres.image
        if image is None:
            raise ValueError("PostgresMode runs its own server")
        return [pulumi.Output.concat("FOR_DATABASE_IMAGE=", image.image_id)]

    @property
    def _dump_access(
        self,
    ) -> tuple[list[pulumi.Input[str]], list[docker.ContainerVolumeArgs], list[pulumi.Resource]]:
        """Over the server's socket (no password): beside the role step, once the server is up, not after it."""
        if self.postgres.container is None:
            raise ValueError("PostgresMode runs its own server")
        return list(self.postgres.socket_env), self.postgres.socket_volumes, [self.postgres.container]

    @property
    def url(self) -> pulumi.Output[str]:
        """The server's URL, password percent-encoded (secret)."""
        return self.postgres.url

    @property
    def backend_network(self) -> pulumi.Input[str]:
        """The internal database network."""
        return self.network.name

"""A PostgreSQL server kept elsewhere (`databaseUrl`, TLS with `databaseCaCert`).

Reached through the app network after a version check (`external_client.py`); backups with `pg_dump` from
`postgresImage`, which the check requires to be at least the server's major version.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.database.base import ServerMode, postgres_component
from components.database.external_client import ExternalPostgres, ExternalPostgresArgs
from components.database.postgres_server import Postgres
from components.network import Networks
from components.secrets import AppSecrets
from components.settings import DatabaseKind, Settings


class ExternalMode(ServerMode):
    """A PostgreSQL server kept elsewhere (`databaseUrl`), reached through the app network."""

    kind = DatabaseKind.EXTERNAL

    @classmethod
    def declare(
        cls, settings: Settings, secrets: AppSecrets, networks: Networks, backups: docker.Volume
    ) -> ExternalMode:
        """The client image and version check; of the stack's own PostgreSQL only its data volume (kept)."""
        server = settings.external_database
        if server is None:
            raise ValueError("external mode needs argusai:databaseUrl")
        client = ExternalPostgres(
            "external",
            ExternalPostgresArgs(
                naming=settings.naming,
                server=server,
                driver=settings.postgres.driver,
                client_image=settings.postgres.image,
                network_name=networks.app.name,
                backups_volume=backups.name,
                follow_registry=settings.registry_digests,
            ),
        )
        postgres = postgres_component(settings, secrets, None, backups)
        return cls(postgres, client, settings, secrets, networks.app, backups)

    def __init__(
        self,
        postgres: Postgres,
        client: ExternalPostgres,
        settings: Settings,
        secrets: AppSecrets,
        app_network: docker.Network,
        backups: docker.Volume,
    ) -> None:
        """Reach the server through the app network, after the version check."""
        super().__init__(
            postgres,
            settings,
            secrets,
            tools_image_id=client.image.image_id,
            libpq_env=client.libpq_env,
            network=app_network.name,
            app_network=app_network.name,
            ready=[client.check],
            backups=backups,
            files=client.files,
        )
        self.client = client

    @property
    def url(self) -> pulumi.Output[str]:
        """The server's URL with the driver named and the CA by path (secret)."""
        return self.client.url

"""A PostgreSQL server kept elsewhere (`database: external`): what the stack needs to use it, no server.

Creates:
- `<name>-image`: the PostgreSQL client image (`postgresImage`), kept locally; its `psql` checks the server
  and its `pg_dump` takes the backups.
- `<name>-check`: a one-shot step (`components/step.py`, role `pg-version`) that connects the way the
  backend will (same URL, TLS settings and CA) and refuses when the image's `pg_dump` is older than the
  server's major version (pg_dump cannot dump a newer server), naming the image to use instead. It runs
  again whenever the URL, the CA or the client image changes; the pre-upgrade backup, the backup loop and
  the backend depend on it, so none of them starts against a server that cannot be reached or backed up.

The server's CA certificate (`databaseCaCert`) reaches every container that connects as an upload to
CA_PATH (`files`), never as a host file, so it works the same with a remote Docker host. Nothing mounts a
pgdata volume: the data is the server's. The containers reach the server through the app network (the
one network with a route out); the database network is not created in this mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

import pulumi
import pulumi_docker as docker

from components.docker_common import local_image
from components.naming import Naming
from components.scripts import PG_VERSION
from components.settings import ExternalDatabase
from components.step import Step, StepArgs

#: Where the server's CA certificate is uploaded in every container that connects to it.
CA_PATH = "/etc/argusai/database-ca.pem"
#: The version check's role: its container's name and its log's.
VERSION_CHECK_ROLE = "pg-version"
# The check's log, on the backups volume (the step runs as the client image's root).
LOG_DIR = "/backups/steps"
# libpq's environment variable for each URL parameter the settings allow.
_LIBPQ_PARAMETER_ENV = {"sslmode": "PGSSLMODE", "connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME"}


def sqlalchemy_url(server: ExternalDatabase, password: str, driver: str) -> str:
    """The backend's DATABASE_URL for the server: driver named, credentials percent-encoded, CA by path."""
    host = f"[{server.host}]" if ":" in server.host else server.host
    credentials = f"{quote(server.user, safe='')}:{quote(password, safe='')}"
    parameters = list(server.parameters)
    if server.ca_cert is not None:
        parameters.append(("sslrootcert", CA_PATH))
    query = f"?{urlencode(parameters)}" if parameters else ""
    return f"postgresql+{driver}://{credentials}@{host}:{server.port}/{quote(server.db, safe='')}{query}"


@dataclass(frozen=True)
class ExternalPostgresArgs:
    """Inputs of ExternalPostgres."""

    naming: Naming
    """Physical names and labels."""
    server: ExternalDatabase
    """The server, parsed and validated from `databaseUrl` and `databaseCaCert`."""
    driver: str
    """The backend's PostgreSQL driver, named in its URL (`psycopg` or `psycopg2`)."""
    client_image: str
    """Image with `psql` and `pg_dump` (`postgresImage`)."""
    network_name: pulumi.Input[str]
    """The network the containers reach the server through (the app network)."""
    backups_volume: pulumi.Input[str]
    """The backups volume, which keeps the check's log."""
    follow_registry: bool
    """Resolve the client image's tag to the registry's current digest."""


class ExternalPostgres(pulumi.ComponentResource):
    """The client side of a PostgreSQL server kept elsewhere."""

    image: docker.RemoteImage
    check: docker.Container
    url: pulumi.Output[str]
    libpq_env: list[pulumi.Input[str]]
    files: list[docker.ContainerUploadArgs]

    def __init__(self, name: str, args: ExternalPostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare the client image and the version check."""
        super().__init__("argusai:external:ExternalPostgres", name, None, opts)
        server = args.server
        self.url = pulumi.Output.secret(server.password.apply(lambda pw: sqlalchemy_url(server, pw, args.driver)))
        self.files = (
            [docker.ContainerUploadArgs(file=CA_PATH, content=server.ca_cert)] if server.ca_cert is not None else []
        )
        self.libpq_env = [
            f"PGHOST={server.host}",
            f"PGPORT={server.port}",
            f"PGUSER={server.user}",
            f"PGDATABASE={server.db}",
            pulumi.Output.concat("PGPASSWORD=", server.password),
            *(f"{_LIBPQ_PARAMETER_ENV[key]}={value}" for key, value in server.parameters),
            *([f"PGSSLROOTCERT={CA_PATH}"] if server.ca_cert is not None else []),
        ]
        self.image = local_image(f"{name}-image", args.client_image, follow_registry=args.follow_registry, parent=self)
        self.check = Step(
            f"{name}-check",
            StepArgs(
                naming=args.naming,
                role=VERSION_CHECK_ROLE,
                image=self.image.image_id,
                script=PG_VERSION.shell,
                volumes=[docker.ContainerVolumeArgs(volume_name=args.backups_volume, container_path="/backups")],
                log_dir=LOG_DIR,
                env=[
                    *self.libpq_env,
                    f"CLIENT_IMAGE={args.client_image}",
                ],
                networks=[args.network_name],
                files=[*PG_VERSION.uploads(), *self.files],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        ).container
        self.register_outputs({"url": self.url, "check": self.check.name})

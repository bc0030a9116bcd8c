"""PostgreSQL for one stack (the compose file's `postgres` profile, done safely).

Creates:
- `<name>-pgdata`: named volume at /var/lib/postgresql/data, in both database modes: a stack that leaves
  PostgreSQL for SQLite keeps its PostgreSQL data (protected and retained with `protectData`).
- `<name>-pgdata-<major>` for each major of `postgresUpgrades`: the data under that major, in every mode,
  always retained (dropping the entry, the way back, leaves it on the host). The last one serves.
- `<name>-image` (PostgreSQL mode): the PostgreSQL image, kept locally.
- `pgdata-check` (PostgreSQL mode, a Step): runs in the image about to serve, with the data volume
  read-only, before the server container is created or replaced: data of another major version, an image
  of another major than the last of `postgresUpgrades`, or an image that keeps its data elsewhere
  (PostgreSQL 18's layout), stops `pulumi up` there with the running server untouched
  (`components/scripts/pgdata_check.sh`).
- `pg-upgrade` (PostgreSQL mode with `postgresUpgrades`, a Step): in the new image, on the database
  network, before the server is replaced: once, into the empty volume of the last major, the data of the
  running server (the volume before), dumped with the new major's `pg_dump` while the old database is
  read-only, restored under a temporary server of the new major, every table's rows counted on both
  sides (`components/scripts/pg_upgrade.sh`). A failure puts the old database back to read-write and
  leaves the new volume empty: the old server serves on.
- `<name>-pgsocket` (PostgreSQL mode): a volume holding only the server's unix socket directory, shared
  with the `postgres-role` step and the pre-upgrade backup (`socket_volumes`, `socket_env`) and nothing
  else.
- `<name>-container` (PostgreSQL mode): the server, on the internal database network only, alias
  `postgres`, no host port, healthy once `pg_isready` answers over TCP, created with `wait` so dependants
  start only then, and stopped with a grace period so replacement and destroy shut it down cleanly. Its
  environment is ignored after creation: PostgreSQL reads POSTGRES_PASSWORD only into an empty data
  directory, so a new password must not replace (restart) the server; `postgres-role` applies it.
- `postgres-role` (PostgreSQL mode, a Step): in the server's image, on the socket only (no network), sets the
  role's password to the stack's with `ALTER ROLE` (`components/scripts/pg_role_password.sh`). It runs
  when the password changes and whenever the server is created, and everything that connects waits for
  it (`ready`): a rotation reaches the running server first, and when it fails nothing else changes. The
  images trust local connections, so the old password is never needed (a program never sees a config
  key's previous value).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_docker as docker

from components.docker_common import (
    Healthcheck,
    data_volume,
    local_image,
    secret_env,
    service_container,
    shell_poll,
    volume_labels,
    waiting_healthcheck,
)
from components.naming import Naming
from components.scripts import PG_ROLE_PASSWORD, PG_UPGRADE, PGDATA_CHECK, Script
from components.step import Step, StepArgs

ALIAS = "postgres"
PORT = 5432
DATA_PATH = "/var/lib/postgresql/data"
# SIGINT is PostgreSQL's "fast" shutdown: it ends sessions and checkpoints at once (SIGTERM waits for
# clients to leave). The grace period is what makes pulumi-docker stop it instead of SIGKILL.
STOP_SIGNAL = "SIGINT"
STOP_GRACE_SECONDS = 30
WAIT_TIMEOUT_SECONDS = 120
FIRST_PROBE_WAIT_SECONDS = 60
STEADY_PROBE_SECONDS = 2
READY_MARKER = "/tmp/argusai-ready.reported"  # noqa: S108 - inside the PostgreSQL container
#: Where the version check sees the data volume (read-only; not the image's PGDATA, which it checks).
CHECK_MOUNT = "/pgdata"
#: The server's unix socket directory (the images' default), shared with the `postgres-role` step.
SOCKET_DIR = "/var/run/postgresql"
#: Where the upgrade sees the volume before (read-only) and the new one.
UPGRADE_SOURCE_MOUNT = "/upgrade/source"
UPGRADE_TARGET_MOUNT = "/upgrade/target"
#: A dump and restore of a large database takes minutes; an hour is far past any real one.
UPGRADE_TIMEOUT_SECONDS = 3600


def healthcheck() -> Healthcheck:
    """`pg_isready` over TCP: on the unix socket the entrypoint's temporary init server already answers.

    User and database come from the container's own POSTGRES_USER/POSTGRES_DB (no quoting of config
    values into a shell). The first probe starts half a second after the container and waits for the
    server inside the container, so it turns healthy within a fraction of a second of PostgreSQL
    accepting connections; each later probe sleeps first, keeping the steady rate at one `pg_isready`
    every STEADY_PROBE_SECONDS.
    """
    check = f'pg_isready -h 127.0.0.1 -p {PORT} -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
    return waiting_healthcheck(
        shell_poll(f"{check} >/dev/null", FIRST_PROBE_WAIT_SECONDS),
        marker=READY_MARKER,
        check=check,
        first=check,
        steady_seconds=STEADY_PROBE_SECONDS,
        # Above the first probe's own wait, so a slow first start is not cut off as a failed probe.
        timeout=FIRST_PROBE_WAIT_SECONDS + 5,
        retries=5,
        start_period=60,
    )


def database_url(user: str, password: str, db: str, driver: str, host: str = ALIAS, port: int = PORT) -> str:
    """Build the backend's SQLAlchemy URL, naming the driver; user and password percent-encoded (any works).

    The driver is named because SQLAlchemy's default for a plain `postgresql://` changes between releases
    (psycopg2 in 2.0, psycopg in 2.1) and the backend image carries exactly one.
    """
    credentials = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"postgresql+{driver}://{credentials}@{host}:{port}/{quote(db, safe='')}"


@dataclass(frozen=True)
class PostgresArgs:
    """Inputs of Postgres."""

    naming: Naming
    """Physical names and labels."""
    image: str
    """PostgreSQL image reference."""
    user: str
    """Role created on first start and used by the backend."""
    db: str
    """Database created on first start."""
    password: pulumi.Output[str]
    """Password of `user` (secret)."""
    driver: str
    """The backend's PostgreSQL driver, named in its URL (`psycopg` or `psycopg2`)."""
    network_name: pulumi.Input[str] | None
    """The internal database network, the only one postgres joins (None when it does not run)."""
    protect_data: bool
    """Protect and retain the data volume (false: a disposable stack; destroy deletes it)."""
    follow_registry: bool
    """Resolve the image tag to the registry's current digest."""
    log_volume: pulumi.Input[str]
    """The volume that keeps the version check's log (the backups volume), mounted at `log_mount`."""
    log_mount: str
    """Where `log_volume` is mounted in the check."""
    log_dir: str
    """The check's log directory, under `log_mount`."""
    upgrades: Sequence[int]
    """The majors the data was upgraded to, in order (`postgresUpgrades`); the last one's volume serves."""
    settled_first: Sequence[pulumi.Resource] = ()
    """What must be settled before anything new runs (the secrets' record: a stack it stops stays untouched)."""


class Postgres(pulumi.ComponentResource):
    """A PostgreSQL server with its data in a retained named volume."""

    container: docker.Container | None
    image: docker.RemoteImage | None
    volume: docker.Volume
    """The volume the server runs on: the last upgrade's, or the first."""
    url: pulumi.Output[str]
    ready: list[pulumi.Resource]
    """What must succeed before anything connects: the role's password set on the running server."""

    def __init__(self, name: str, args: PostgresArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare volume, image and container."""
        super().__init__("argusai:database:Postgres", name, None, opts)
        naming = args.naming
        volumes = [
            data_volume(
                f"{name}-pgdata",
                naming.physical_name("pgdata"),
                naming.labels("pgdata"),
                parent=self,
                keep=args.protect_data,
            )
        ]
        for major in args.upgrades:
            role = f"pgdata-{major}"
            volumes.append(
                docker.Volume(
                    f"{name}-{role}",
                    name=naming.physical_name(role),
                    labels=volume_labels(naming.labels(role)),
                    # Retained always: the way back drops the entry and must not lose what it holds.
                    opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, protect=args.protect_data),
                )
            )
        self.volume = volumes[-1]
        self.url = pulumi.Output.secret(
            args.password.apply(lambda pw: database_url(args.user, pw, args.db, args.driver))
        )
        self.container = self.image = None
        self.ready = []
        self.socket_volumes: list[docker.ContainerVolumeArgs] = []
        self.socket_env: list[str] = []
        if args.network_name is None:  # SQLite mode: only the data volume
            self.register_outputs({"volume": self.volume.name})
            return
        self.image = local_image(f"{name}-image", args.image, follow_registry=args.follow_registry, parent=self)
        # Holds nothing but a socket: neither protected nor retained.
        socket = docker.Volume(
            f"{name}-pgsocket",
            name=naming.physical_name("pgsocket"),
            labels=volume_labels(naming.labels("pgsocket")),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.settled_first)),
        )
        socket_mount = docker.ContainerVolumeArgs(volume_name=socket.name, container_path=SOCKET_DIR)
        self.check = self._step(
            args,
            "pgdata-check",
            PGDATA_CHECK,
            volumes=[
                docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=CHECK_MOUNT, read_only=True),
            ],
            env=[
                f"PGDATA_MOUNT={CHECK_MOUNT}",
                f"EXPECTED_PGDATA={DATA_PATH}",
                f"IMAGE={args.image}",
                f"VOLUME={naming.physical_name(f'pgdata-{args.upgrades[-1]}' if args.upgrades else 'pgdata')}",
                f"EXPECTED_MAJOR={args.upgrades[-1] if args.upgrades else ''}",
            ],
            depends_on=args.settled_first,
        )
        upgrade = [] if not args.upgrades else [self._upgrade(name, args, volumes[-2], volumes[-1]).container]
        self.container = service_container(
            f"{name}-container",
            naming=naming,
            role="postgres",
            grace_seconds=STOP_GRACE_SECONDS,
            parent=self,
            image=self.image.image_id,
            envs=secret_env(
                [
                    f"POSTGRES_USER={args.user}",
                    pulumi.Output.concat("POSTGRES_PASSWORD=", args.password),
                    f"POSTGRES_DB={args.db}",
                ]
            ),
            volumes=[
                docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=DATA_PATH),
                socket_mount,
            ],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.network_name, aliases=[ALIAS])],
            healthcheck=healthcheck().args(),
            wait=True,
            wait_timeout=WAIT_TIMEOUT_SECONDS,
            stop_signal=STOP_SIGNAL,
            depends_on=[self.check.container, *upgrade],
            # Read into an empty data directory only: a new password is `postgres-role`'s, not a restart.
            ignore_changes=["envs"],
        )
        role = self._step(
            args,
            "postgres-role",
            PG_ROLE_PASSWORD,
            volumes=[socket_mount],
            env=[
                f"SOCKET_DIR={SOCKET_DIR}",
                f"ROLE={args.user}",
                f"DATABASE={args.db}",
                pulumi.Output.concat("NEW_PASSWORD=", args.password),
                # Runs again on every new server: its password is the stack's, whatever it was made with.
                pulumi.Output.concat("SERVER=", self.container.id),
            ],
            depends_on=[self.container],
        )
        self.ready = [role.container]
        # The server's socket, which the images trust: whoever mounts it connects with no password.
        self.socket_volumes = [socket_mount]
        self.socket_env = [f"PGHOST={SOCKET_DIR}", f"PGUSER={args.user}", f"PGDATABASE={args.db}"]
        self.register_outputs({"url": self.url, "volume": self.volume.name, "container": self.container.name})

    def _upgrade(self, name: str, args: PostgresArgs, source: docker.Volume, target: docker.Volume) -> Step:
        """The `pg-upgrade` step: the running server's data into the last major's volume, once."""
        if args.network_name is None:
            raise ValueError("the upgrade runs on the database network")
        major = args.upgrades[-1]
        return self._step(
            args,
            "pg-upgrade",
            PG_UPGRADE,
            volumes=[
                docker.ContainerVolumeArgs(
                    volume_name=source.name, container_path=UPGRADE_SOURCE_MOUNT, read_only=True
                ),
                docker.ContainerVolumeArgs(volume_name=target.name, container_path=UPGRADE_TARGET_MOUNT),
            ],
            env=[
                f"SOURCE_MOUNT={UPGRADE_SOURCE_MOUNT}",
                f"TARGET_MOUNT={UPGRADE_TARGET_MOUNT}",
                pulumi.Output.concat("SOURCE_VOLUME=", source.name),
                pulumi.Output.concat("TARGET_VOLUME=", target.name),
                f"TARGET_MAJOR={major}",
                f"IMAGE={args.image}",
                # The running (old) server, as the backend reaches it.
                f"PGHOST={ALIAS}",
                f"PGPORT={PORT}",
                f"PGUSER={args.user}",
                f"PGDATABASE={args.db}",
                pulumi.Output.concat("PGPASSWORD=", args.password),
            ],
            networks=[args.network_name],
            timeout_seconds=UPGRADE_TIMEOUT_SECONDS,
            depends_on=[self.check.container],
        )

    def _step(
        self,
        args: PostgresArgs,
        role: str,
        script: Script,
        *,
        volumes: Sequence[docker.ContainerVolumeArgs],
        **options: Any,
    ) -> Step:
        """A step of the server's, in its image: `script` as a file, `volumes` and the log volume mounted."""
        if self.image is None:
            raise ValueError("the server's steps run in its image")
        return Step(
            role,
            StepArgs(
                naming=args.naming,
                role=role,
                image=self.image.image_id,
                script=script.shell,
                volumes=[
                    *volumes,
                    docker.ContainerVolumeArgs(volume_name=args.log_volume, container_path=args.log_mount),
                ],
                log_dir=args.log_dir,
                files=script.uploads(),
                **options,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

"""What every database mode answers, and what the two server modes share (`ServerMode`).

A mode is not a resource: it declares what its database needs and answers, for the rest of the program,
every question whose answer differs per database: the backend's DATABASE_URL, the network and readiness
the backend waits for, how backups are taken, and what the stack exports about its database.

Each mode also owns its schema gate (`gate`): before a backend image serves, a pre-upgrade backup into the
backups volume (`pre-upgrade-<UTC time>.sqlite3` / `.dump`), then the release's steps in one process in the
backend image (`components/scripts/release_steps.py`): `schema_gate.py` brings the database to the
release's Alembic head; then, for a server, the data move copies a SQLite file's rows into it once; then
the key rotation and the first admin. Both are one-shot steps (`components/step.py`), so a failure stops
`pulumi up` with the old backend serving. Their scripts reach the containers as files
(`components/scripts`).

In every mode the PostgreSQL data volume stays declared (`Postgres` without a network declares only the
volume), so leaving PostgreSQL never deletes its data and coming back finds it; the SQLite file stays in
the data volume, untouched by the move.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence

import pulumi
import pulumi_docker as docker

from components import backend
from components.backend import Backend, GateFactory, Serving
from components.backend_start import BackendStart
from components.backup import BACKUP_PATH, BackupPlan
from components.database.driver import Driver, DriverArgs
from components.database.postgres_server import Postgres, PostgresArgs
from components.naming import Naming
from components.network import Networks
from components.scripts import PG_BACKUP, RELEASE_STEPS, RELEASE_STEPS_WITH_MOVE, Script
from components.secrets import AppSecrets
from components.settings import DatabaseKind, Settings
from components.step import DONE_MARKER, Step, StepArgs

SQLITE_FILE = f"{backend.DATA_PATH}/app.db"
#: The one-shot step running the release's steps (`release_steps.py`): its container's role and log's name.
RELEASE_ROLE = "release-steps"
# The release steps' log on a SQLite stack, on the data volume (they run as the image's user, who owns it).
GATE_LOG_DIR = f"{backend.DATA_PATH}/schema-gate"
# The pre-upgrade backups' logs, on the backups volume (root's).
BACKUP_LOG_DIR = f"{BACKUP_PATH}/steps"
# The backup scripts' one-shot mode: one file named pre-upgrade-<UTC time>, never pruned by backupKeep.
PRE_UPGRADE_ENV = ("BACKUP_ONCE=1", "BACKUP_PREFIX=pre-upgrade")
SQLITE_URL = f"sqlite:///{SQLITE_FILE}"
# The data move's report, beside the steps' logs (the step's own log stays `.partial` while it holds the lock).
MOVE_REPORT = f"{BACKUP_LOG_DIR}/data-move.report"
# A large SQLite database moves at thousands of rows a second; an hour is far past any real one.
MOVE_TIMEOUT_SECONDS = 3600
ROOT_USER = "0"
# One backend process per stack: a pool of 5 plus 5 overflow stays far below PostgreSQL's 100 connections
# and leaves room for backups and an operator's psql; connections are checked before use (a restarted
# server) and recycled every 30 minutes.
POSTGRES_POOL_ENV = ("DB_POOL_SIZE=5", "DB_MAX_OVERFLOW=5", "DB_POOL_PRE_PING=true", "DB_POOL_RECYCLE=1800")


class DatabaseMode(ABC):
    """What the rest of the program needs to know about the stack's database."""

    #: Whether the stack needs the internal database network.
    uses_database_network = False
    #: The `database` value this mode answers to.
    kind: DatabaseKind

    @classmethod
    @abstractmethod
    def declare(
        cls, settings: Settings, secrets: AppSecrets, networks: Networks, backups: docker.Volume
    ) -> DatabaseMode:
        """Declare what this mode's database needs (logs may go to `backups`); return the mode."""

    def __init__(self, postgres: Postgres, naming: Naming, secrets: AppSecrets) -> None:
        """Keep the PostgreSQL component (its data volume exists in every mode)."""
        self.postgres = postgres
        self.naming = naming
        self.secrets = secrets

    @abstractmethod
    def _pre_upgrade_backup(
        self,
        image_id: pulumi.Input[str],
        data: docker.Volume,
        backups: docker.Volume,
        with_steps: Sequence[pulumi.Input[str]],
    ) -> Step:
        """A backup of the database as it is, before the gate touches it.

        `with_steps` goes into its environment: what the release's steps get, so it runs whenever they do.
        """

    def _backup_step(
        self,
        image_id: pulumi.Input[str],
        script: Script,
        volumes: Sequence[docker.ContainerVolumeArgs],
        env: Sequence[pulumi.Input[str]],
        *,
        user: str | None = None,
        depends_on: Sequence[pulumi.Resource] = (),
    ) -> Step:
        """The pre-upgrade backup step, its log on the backups volume (mounted by `volumes`)."""
        return Step(
            "schema-backup",
            StepArgs(
                naming=self.naming,
                role="schema-backup",
                image=image_id,
                user=user,
                script=script.shell,
                volumes=volumes,
                log_dir=BACKUP_LOG_DIR,
                # Once more for a new ENCRYPTION_KEY: the backup the key rotation comes after.
                env=[*env, self.secrets.key_fingerprint_env],
                networks=self._networks,
                files=[*script.uploads(), *self.files],
                # Not before the secrets are settled: a stack they stop is left untouched.
                depends_on=[*depends_on, self.secrets.record],
            ),
        )

    @property
    def _networks(self) -> list[pulumi.Input[str]]:
        """The networks the steps that connect to the database join (none for a file)."""
        return []

    @property
    def python_path(self) -> list[str]:
        """Directories the backend's Python needs besides the image's own (a driver the image lacks)."""
        return []

    @property
    def python_volumes(self) -> list[docker.ContainerVolumeArgs]:
        """What holds `python_path`, mounted read-only into every container of the backend image."""
        return []

    @property
    def driver_module(self) -> str | None:
        """The database driver the backend imports, when the image may lack it (None: nothing to wait for)."""
        return None

    @property
    def _server_env(self) -> list[pulumi.Input[str]]:
        """What makes the release's steps run again on a new server of the stack's own (none for a file)."""
        return []

    @property
    def _script_env(self) -> list[str]:
        """PYTHONPATH of the release's steps (`python -m`) in the backend image: their zip, then the driver."""
        return [f"PYTHONPATH={':'.join([self._release_script.python_path, *self.python_path])}"]

    def _ready_to_connect(self, image_id: pulumi.Input[str], backups: docker.Volume) -> list[pulumi.Resource]:
        """What must succeed before the backend image connects to the database (nothing for a file)."""
        return []

    @property
    def files(self) -> list[docker.ContainerUploadArgs]:
        """Files every container that connects to the database needs (none for a file)."""
        return []

    def before_serving(
        self, backups: docker.Volume, *, gate: bool, admin_password: pulumi.Output[str], start: BackendStart
    ) -> GateFactory:
        """What must succeed before a backend image serves, in order, and how the backend waits for it.

        The database ready and what the image needs to connect (a server's driver); then, with `gate` (an
        ArgusAI release), a backup of the database as it is, then the release's steps in one container
        (`release-steps`): the database to the release's head (and a server's data move), every stored
        credential under the backend's ENCRYPTION_KEY (moved from the previous key, or the step fails with
        nothing changed), and the first admin seeded with the stack's password when the database has no user.
        Every step takes the backend image id among its inputs, so each runs again whenever it changes. The
        backend then serves as `start` says: created after the last step (a failure leaves the old backend
        serving), or on a new stack created beside them and serving once they passed.
        """

        def declare(image_id: pulumi.Input[str], data: docker.Volume) -> Serving:
            ready = self._ready_to_connect(image_id, backups)
            if not gate:
                prerequisites = [*self.backend_depends_on, *ready]
                return Serving(prerequisites=prerequisites, waits_for=prerequisites, env=self.backend_python_env)
            steps_env = start.steps_env(image_id)
            backup = self._pre_upgrade_backup(image_id, data, backups, steps_env)
            depends_on = [backup.container, *ready, self.secrets.record]
            steps = Step(
                RELEASE_ROLE, self._release_steps(image_id, data, backups, admin_password, depends_on, steps_env)
            )
            return start.serving(
                steps_env,
                [*self.backend_depends_on, steps.container],
                python_path=self.python_path,
                driver_module=self.driver_module,
            )

        return declare

    #: The parts of `release_steps.py` this mode runs (the script runs them in its own fixed order).
    _release_parts: tuple[str, ...] = ("schema_gate", "key_rotation", "admin_seed")
    #: The release's steps with the modules of those parts.
    _release_script: Script = RELEASE_STEPS

    def _release_steps(
        self,
        image_id: pulumi.Input[str],
        data: docker.Volume,
        backups: docker.Volume,
        admin_password: pulumi.Output[str],
        depends_on: Sequence[pulumi.Resource],
        start_env: Sequence[pulumi.Input[str]],
    ) -> StepArgs:
        """The release's steps: this project's scripts on the release's own code, in one process.

        In the backend image as its user, with what the backend gets: the database, the keys, the data
        volume, the driver; `start_env` says where to write which token once they passed. `backups` is for a
        mode whose steps write there.
        """
        return StepArgs(
            naming=self.naming,
            role=RELEASE_ROLE,
            image=image_id,
            script=self._release_script.shell,
            # Mounted where the backend mounts it: a first mount copies the image's ownership.
            volumes=[
                docker.ContainerVolumeArgs(volume_name=data.name, container_path=backend.DATA_PATH),
                *self.python_volumes,
            ],
            log_dir=GATE_LOG_DIR,
            env=[
                *self.backend_env,
                # The release's settings refuse to load without them.
                *self.secrets.app_env,
                *self._script_env,
                *self._server_env,
                f"RELEASE_PARTS={' '.join(self._release_parts)}",
                pulumi.Output.concat("ADMIN_PASSWORD=", admin_password),
                *start_env,
            ],
            networks=self._networks,
            files=[*self._release_script.uploads(), *self.files],
            depends_on=[*depends_on, *self.backend_depends_on],
        )

    @property
    @abstractmethod
    def url(self) -> pulumi.Output[str]:
        """The backend's DATABASE_URL (secret)."""

    @property
    def backend_env(self) -> list[pulumi.Input[str]]:
        """The backend's database settings as NAME=value entries (DATABASE_URL is secret)."""
        return [pulumi.Output.concat("DATABASE_URL=", self.url)]

    @property
    def backend_network(self) -> pulumi.Input[str] | None:
        """A network the backend joins besides the app network, to reach its database."""
        return None

    @property
    def backend_depends_on(self) -> list[pulumi.Resource]:
        """What must be ready before the backend is created."""
        return []

    @property
    def backend_python_env(self) -> list[str]:
        """The backend's PYTHONPATH when it needs `python_path` (the image's own, /app, kept first)."""
        if not self.python_path:
            return []
        return [backend.python_path_env(self.python_path)]

    @abstractmethod
    def backup_plan(self, api: Backend) -> BackupPlan:
        """How the backup container takes a backup of this database."""

    def exports(self) -> dict[str, pulumi.Input[str]]:
        """Stack outputs about the database (`databaseMode` tells the next `up` where the data was)."""
        return {"databaseMode": str(self.kind), "databaseUrl": self.url, "pgdataVolume": self.postgres.volume.name}


class ServerMode(DatabaseMode):
    """A PostgreSQL server, the stack's own or one kept elsewhere: what both answer alike.

    `pg_dump` backups from an image of the server's tools with libpq settings from the same values as the
    URL; a pool sized for one backend; and the data move: on the way from SQLite, after the schema gate
    made the server's schema, `components/scripts/data_move/` copies the SQLite file's rows before the
    backend starts on the server (nothing to copy on a stack that never had SQLite data).
    """

    def __init__(
        self,
        postgres: Postgres,
        settings: Settings,
        secrets: AppSecrets,
        *,
        tools_image_id: pulumi.Input[str],
        libpq_env: Sequence[pulumi.Input[str]],
        network: pulumi.Input[str],
        app_network: pulumi.Input[str],
        ready: Sequence[pulumi.Resource],
        backups: docker.Volume,
        files: Sequence[docker.ContainerUploadArgs] = (),
    ) -> None:
        """Keep how the server is reached: `ready` must succeed before anything connects to it.

        Declares the backend's driver (`driver.py`): installed from `pythonIndexUrl` over `app_network`
        (which has a route out) when the backend image carries none; its step's log goes to `backups`.
        """
        super().__init__(postgres, settings.naming, secrets)
        self._tools_image_id = tools_image_id
        self._libpq_env = list(libpq_env)
        self._network = network
        self._app_network = app_network
        self._ready = list(ready)
        self._files = list(files)
        self.driver = Driver(
            "driver",
            DriverArgs(
                naming=settings.naming,
                driver=settings.postgres.driver,
                index_url=settings.postgres.driver_index,
                network=app_network,
                log_volume=backups.name,
                log_mount=BACKUP_PATH,
                depends_on=(secrets.record,),
            ),
        )

    @property
    def python_path(self) -> list[str]:
        """The driver's directory (empty when the image carries its own)."""
        return [self.driver.directory]

    @property
    def python_volumes(self) -> list[docker.ContainerVolumeArgs]:
        """The driver volume, read-only."""
        return self.driver.mounts

    @property
    def driver_module(self) -> str:
        """The driver module (the image's own or the volume's)."""
        return self.driver.module

    def _ready_to_connect(self, image_id: pulumi.Input[str], backups: docker.Volume) -> list[pulumi.Resource]:
        """The `driver` step: the image's own PostgreSQL driver, or the pinned one installed from the index."""
        return [self.driver.install(image_id, BACKUP_LOG_DIR).container]

    @property
    def _networks(self) -> list[pulumi.Input[str]]:
        return [self._network]

    @property
    def files(self) -> list[docker.ContainerUploadArgs]:
        """Files every container that connects needs (the server's CA certificate, if any)."""
        return self._files

    @property
    def backend_env(self) -> list[pulumi.Input[str]]:
        """The URL and a connection pool sized for one backend."""
        return [*super().backend_env, *POSTGRES_POOL_ENV]

    @property
    def backend_depends_on(self) -> list[pulumi.Resource]:
        """What shows the server answers (the backend starts only then)."""
        return self._ready

    @property
    def _dump_access(
        self,
    ) -> tuple[list[pulumi.Input[str]], list[docker.ContainerVolumeArgs], list[pulumi.Resource]]:
        """How the pre-upgrade backup reaches the server: libpq's settings, volumes, what it waits for."""
        return self._libpq_env, [], self._ready

    def _pre_upgrade_backup(
        self,
        image_id: pulumi.Input[str],
        data: docker.Volume,
        backups: docker.Volume,
        with_steps: Sequence[pulumi.Input[str]],
    ) -> Step:
        """`pg_dump` from the tools image; the backend image id in its inputs reruns it per image."""
        env, volumes, after = self._dump_access
        return self._backup_step(
            self._tools_image_id,
            PG_BACKUP,
            [docker.ContainerVolumeArgs(volume_name=backups.name, container_path=BACKUP_PATH), *volumes],
            [*env, *PRE_UPGRADE_ENV, pulumi.Output.concat("FOR_BACKEND_IMAGE=", image_id), *with_steps],
            depends_on=after,
        )

    _release_parts = (*DatabaseMode._release_parts, "data_move")
    _release_script = RELEASE_STEPS_WITH_MOVE

    def _release_steps(
        self,
        image_id: pulumi.Input[str],
        data: docker.Volume,
        backups: docker.Volume,
        admin_password: pulumi.Output[str],
        depends_on: Sequence[pulumi.Resource],
        start_env: Sequence[pulumi.Input[str]],
    ) -> StepArgs:
        """The release's steps with the data move from the SQLite file after the gate (see the class docstring).

        As root: the backups volume (the move's pre-move copy, its report, the log) is root's; the SQLite
        file is only read, and on a server's stack nothing the release's code runs writes a file.
        """
        args = super()._release_steps(image_id, data, backups, admin_password, depends_on, start_env)
        return dataclasses.replace(
            args,
            user=ROOT_USER,
            volumes=[
                *args.volumes,
                docker.ContainerVolumeArgs(volume_name=backups.name, container_path=BACKUP_PATH),
            ],
            log_dir=BACKUP_LOG_DIR,
            env=[
                *args.env,
                f"MOVE_SOURCE_URL={SQLITE_URL}",
                f"MOVE_BACKUP_DIR={BACKUP_PATH}",
                f"MOVE_REPORT={MOVE_REPORT}",
                # Done once the parts after the copy are; then the SQLite write lock is held, so the old
                # backend's writes fail instead of landing after the copy, until the old backend has stopped ...
                f"STEP_DONE={DONE_MARKER}",
                "MOVE_HOLD=1",
                # ... released once the new backend answers (so a later way back finds it unlocked).
                f"MOVE_RELEASE_AFTER=http://{backend.ALIAS}:{backend.PORT}/health",
            ],
            timeout_seconds=MOVE_TIMEOUT_SECONDS,
        )

    def backup_plan(self, api: Backend) -> BackupPlan:
        """`pg_dump` from the tools image on the server's network, after the backend made the schema."""
        return BackupPlan(
            image_id=self._tools_image_id,
            entrypoints=PG_BACKUP.argv,
            env=self._libpq_env,
            network=self._network,
            files=[*PG_BACKUP.uploads(), *self._files],
            depends_on=[*self._ready, api.container],
        )


def postgres_component(
    settings: Settings, secrets: AppSecrets, network: docker.Network | None, backups: docker.Volume
) -> Postgres:
    """The PostgreSQL component: with a network, the server; without, only its data volume."""
    return Postgres(
        "postgres",
        PostgresArgs(
            naming=settings.naming,
            image=settings.postgres.image,
            user=settings.postgres.user,
            db=settings.postgres.db,
            password=secrets.postgres_password,
            driver=settings.postgres.driver,
            network_name=network.name if network is not None else None,
            protect_data=settings.protect_data,
            follow_registry=settings.registry_digests,
            log_volume=backups.name,
            log_mount=BACKUP_PATH,
            log_dir=BACKUP_LOG_DIR,
            settled_first=[secrets.record],
            upgrades=settings.postgres.upgrades,
        ),
    )

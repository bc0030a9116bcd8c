"""SQLite: a file in the backend's data volume.

Backups with SQLite's online backup API, run from the backend image with no network at all; the
PostgreSQL data volume stays declared (kept from, or for, a server mode).
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_docker as docker

from components import backend
from components.backend import Backend
from components.backup import BACKUP_PATH, BackupPlan
from components.database.base import (
    PRE_UPGRADE_ENV,
    ROOT_USER,
    SQLITE_FILE,
    SQLITE_URL,
    DatabaseMode,
    postgres_component,
)
from components.database.external_client import VERSION_CHECK_ROLE
from components.naming import Naming
from components.network import Networks
from components.scripts import PYTHONPATH_ENV, SQLITE_BACKUP
from components.secrets import AppSecrets
from components.settings import DatabaseKind, Settings
from components.step import Step


class SqliteMode(DatabaseMode):
    """SQLite: a file in the backend's data volume."""

    kind = DatabaseKind.SQLITE

    @classmethod
    def declare(cls, settings: Settings, secrets: AppSecrets, networks: Networks, backups: docker.Volume) -> SqliteMode:
        """Only the PostgreSQL data volume (kept from, or for, PostgreSQL mode)."""
        mode = cls(postgres_component(settings, secrets, None, backups), settings.naming, secrets)
        # Back from a server: its data stays where it is; say how to bring it into the SQLite file.
        _leaving_server(server_left_behind(settings.naming), settings)
        return mode

    def _pre_upgrade_backup(
        self,
        image_id: pulumi.Input[str],
        data: docker.Volume,
        backups: docker.Volume,
        with_steps: Sequence[pulumi.Input[str]],
    ) -> Step:
        """SQLite's online backup from the backend image, as root (the backups volume is root's)."""
        return self._backup_step(
            image_id,
            SQLITE_BACKUP,
            [
                docker.ContainerVolumeArgs(volume_name=data.name, container_path=backend.DATA_PATH),
                docker.ContainerVolumeArgs(volume_name=backups.name, container_path=BACKUP_PATH),
            ],
            [*PRE_UPGRADE_ENV, f"BACKUP_SOURCE={SQLITE_FILE}", PYTHONPATH_ENV, *with_steps],
            user=ROOT_USER,
        )

    @property
    def url(self) -> pulumi.Output[str]:
        """The file in the data volume (secret, as in PostgreSQL mode, so tooling never special-cases it)."""
        return pulumi.Output.secret(SQLITE_URL)

    def backup_plan(self, api: Backend) -> BackupPlan:
        """SQLite's online backup API from the backend image (which has Python), no network at all."""
        return BackupPlan(
            image_id=api.image.image_id,
            entrypoints=SQLITE_BACKUP.argv,
            env=[f"BACKUP_SOURCE={SQLITE_FILE}", PYTHONPATH_ENV],
            volumes=[docker.ContainerVolumeArgs(volume_name=api.volume.name, container_path=backend.DATA_PATH)],
            # The backups volume is root's (nothing in the backend image owns /backups), and the release's
            # image runs as uid 1000: as that user the loop could not write a single backup.
            user=ROOT_USER,
            depends_on=[api.container],
            files=SQLITE_BACKUP.uploads(),
        )


def server_left_behind(naming: Naming) -> DatabaseKind | None:
    """The server mode this stack ran in until now, read from the Docker host (None: it did not).

    The stack's own checkpoint is never read (the same `up` writes it). PostgreSQL mode leaves its
    database network, a server kept elsewhere its `pg-version` step: both are still there while the
    program runs, and removed by the same `up` once it moved to SQLite.
    """
    try:
        docker.get_network(name=naming.physical_name("db"))
    except Exception:  # noqa: BLE001, S110 - an invoke that finds nothing fails; that is the answer
        pass
    else:
        return DatabaseKind.POSTGRES
    try:
        docker.get_logs(name=naming.physical_name(VERSION_CHECK_ROLE), tail="1")
    except Exception:  # noqa: BLE001, S110 - as above
        return None
    return DatabaseKind.EXTERNAL


def _leaving_server(previous: DatabaseKind | None, settings: Settings) -> None:
    """Warn when the stack leaves a server for SQLite: the backend serves the SQLite file as it was."""
    if previous is not None and previous.is_server and settings.database is DatabaseKind.SQLITE:
        pulumi.log.warn(
            f"argusai:database changed from {previous} to sqlite: the backend serves the SQLite file in "
            f"{settings.naming.physical_name('data')} as it was before the move; the data on {previous} is kept, "
            f"nothing was deleted. To bring it into SQLite use scripts/move-to-sqlite.sh {settings.naming.base} "
            "(docs/databases.md: Going back to SQLite)."
        )

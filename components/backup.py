"""Scheduled backups of the stack's database into their own retained volume.

Creates:
- `<name>-volume`: named volume at /backups, kept whether or not backups run (protected and retained with
  `protectData`), so turning backups off never deletes the backups taken so far.
- `<name>-container` (when enabled): a small loop that takes a backup at start and then every interval, keeps the newest
  N, and writes each under a temporary name renamed when complete.
  * PostgreSQL: `pg_dump --format=custom` from the PostgreSQL image (same major version as the server),
    on the internal database network only, the password passed in its (secret) environment.
  * SQLite: SQLite's online backup API from the backend image (which has Python), with no network at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Literal

import pulumi
import pulumi_docker as docker

from components.docker_common import (
    data_volume,
    secret_env,
    service_container,
)
from components.naming import Naming

BACKUP_PATH = "/backups"
STOP_GRACE_SECONDS = 10
PG_SCRIPT = resources.files("components.scripts").joinpath("pg_backup.sh").read_text()
SQLITE_SCRIPT = resources.files("components.scripts").joinpath("sqlite_backup.py").read_text()


@dataclass(frozen=True)
class BackupArgs:
    """Inputs of Backup."""

    naming: Naming
    """Physical names and labels."""
    enabled: bool
    """Run the backup container (the volume is declared either way)."""
    mode: Literal["sqlite", "postgres"]
    """Which database to back up."""
    image_id: pulumi.Input[str]
    """PostgreSQL image id (postgres mode) or backend image id (sqlite mode)."""
    interval_hours: int
    """Hours between two backups."""
    keep: int
    """How many backups to keep."""
    protect_data: bool
    """Protect and retain the backups volume (false: a disposable stack; destroy deletes it)."""
    env: list[pulumi.Input[str]] = field(default_factory=list)
    """Connection settings (PGHOST, PGPASSWORD, ...) in postgres mode."""
    network: pulumi.Input[str] | None = None
    """The internal database network (postgres mode)."""
    data_volume: pulumi.Input[str] | None = None
    """The backend's data volume holding the SQLite file (sqlite mode)."""
    data_path: str = "/app/data"
    """Where the data volume is mounted, as in the backend."""
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    """Resources that must be ready first."""


class Backup(pulumi.ComponentResource):
    """The backup container and its volume."""

    container: docker.Container | None
    volume: docker.Volume

    def __init__(self, name: str, args: BackupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare volume and container."""
        super().__init__("argusai:backup:Backup", name, None, opts)
        naming = args.naming
        self.volume = data_volume(
            f"{name}-volume",
            naming.physical_name("backups"),
            naming.labels("backups"),
            parent=self,
            keep=args.protect_data,
        )
        self.container = None
        if not args.enabled:
            self.register_outputs({"volume": self.volume.name})
            return
        policy = [f"BACKUP_INTERVAL_HOURS={args.interval_hours}", f"BACKUP_KEEP={args.keep}"]
        volumes = [docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=BACKUP_PATH)]
        if args.mode == "postgres":
            entrypoints = ["sh", "-c", PG_SCRIPT]
            networks = [docker.ContainerNetworksAdvancedArgs(name=args.network)]
            network_mode = None
        else:
            entrypoints = ["python", "-c", SQLITE_SCRIPT]
            policy.append(f"BACKUP_SOURCE={args.data_path}/app.db")
            volumes.append(docker.ContainerVolumeArgs(volume_name=args.data_volume, container_path=args.data_path))
            # Nothing to reach: a copy from one volume to another needs no network.
            networks = None
            network_mode = "none"
        self.container = service_container(
            f"{name}-container",
            naming=naming,
            role="backup",
            grace_seconds=STOP_GRACE_SECONDS,
            parent=self,
            depends_on=args.depends_on,
            image=args.image_id,
            entrypoints=entrypoints,
            envs=secret_env([*args.env, *policy]),
            volumes=volumes,
            networks_advanced=networks,
            network_mode=network_mode,
        )
        self.register_outputs({"volume": self.volume.name, "container": self.container.name})

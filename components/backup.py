"""Scheduled backups of the stack's database into their own volume.

Creates:
- `<name>-volume`: named volume at /backups, kept whether or not backups run (protected and retained with
  `protectData`), so turning backups off never deletes the backups taken so far.
- `<name>-container` (when enabled, declared by `run` once the plan is known): runs the database mode's
  backup plan, a small loop that takes a
  backup whenever the newest is older than the interval (and on SIGHUP), keeps the newest N, and writes
  each under a temporary name renamed when complete. What it runs, in which image, on which network and
  with which volumes is the mode's plan (`components.database`): this component knows no database.
  Its healthcheck is its own (never the image's, which probes a server this container does not run):
  unhealthy once a backup has failed (until the next succeeds), or when none has succeeded for the
  interval plus OVERDUE_SLACK_MINUTES; the loop reports each outcome in STATUS_DIR.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.docker_common import Healthcheck, data_volume, secret_env, service_container
from components.naming import Naming

BACKUP_PATH = "/backups"
STOP_GRACE_SECONDS = 10
#: Where the loop reports its last outcome (`succeeded`, `failed`: the UTC time and the file or the cause):
#: inside the container, not on the backups volume, which may be the thing that is full.
STATUS_DIR = "/tmp/argusai-backup"  # noqa: S108 - the container's own /tmp, read by its healthcheck
#: A backup counts as overdue this long after the interval (a large database's copy takes a while).
OVERDUE_SLACK_MINUTES = 60
#: Seconds between two probes: a failed backup shows within this.
HEALTH_INTERVAL_SECONDS = 30
HEALTH_TIMEOUT_SECONDS = 10


def backup_healthcheck(interval_hours: int) -> Healthcheck:
    """Healthy unless the last backup failed (its cause printed) or none succeeded for too long."""
    overdue = interval_hours * 60 + OVERDUE_SLACK_MINUTES
    succeeded = f"{STATUS_DIR}/succeeded"
    return Healthcheck(
        test=(
            "CMD-SHELL",
            f"if [ -e {STATUS_DIR}/failed ]; then cat {STATUS_DIR}/failed; exit 1; fi; "
            f'[ ! -e {succeeded} ] || [ -n "$(find {succeeded} -mmin -{overdue})" ] '
            f"|| {{ echo no backup succeeded for {overdue} minutes; exit 1; }}",
        ),
        interval=HEALTH_INTERVAL_SECONDS,
        timeout=HEALTH_TIMEOUT_SECONDS,
        retries=1,
        start_period=0,
    )


@dataclass(frozen=True)
class BackupPlan:
    """How one database is backed up: what the backup container runs, and with what."""

    image_id: pulumi.Input[str]
    """Image the loop runs in (one that has the database's own dump tool)."""
    entrypoints: Sequence[str]
    """The loop itself; it writes into BACKUP_PATH and reads BACKUP_INTERVAL_HOURS and BACKUP_KEEP."""
    env: Sequence[pulumi.Input[str]] = field(default_factory=tuple)
    """What the loop needs to reach the database (secret entries allowed: the list is marked secret)."""
    volumes: Sequence[docker.ContainerVolumeArgs] = field(default_factory=tuple)
    """Volumes besides the backups volume (the database's own files)."""
    network: pulumi.Input[str] | None = None
    """The network to reach the database on; None means no network at all."""
    user: str | None = None
    """User to run as, when the image's own cannot write the backups volume (None: the image's)."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """Resources that must be ready first (after the backend: the first backup holds its schema)."""
    files: Sequence[docker.ContainerUploadArgs] = field(default_factory=tuple)
    """Files uploaded into the container before it starts (a database server's CA certificate)."""


@dataclass(frozen=True)
class BackupArgs:
    """Inputs of Backup."""

    naming: Naming
    """Physical names and labels."""
    enabled: bool
    """Run the backup container (the volume is declared either way)."""
    interval_hours: int
    """Hours between two backups."""
    keep: int
    """How many backups to keep."""
    protect_data: bool
    """Protect and retain the backups volume (false: a disposable stack; destroy deletes it)."""


class Backup(pulumi.ComponentResource):
    """The backups volume (declared first: the schema gate writes its pre-upgrade backup there) and the loop."""

    container: docker.Container | None
    volume: docker.Volume

    def __init__(self, name: str, args: BackupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare the volume; `run` declares the container."""
        super().__init__("argusai:backup:Backup", name, None, opts)
        self._name = name
        self._args = args
        self.volume = data_volume(
            f"{name}-volume",
            args.naming.physical_name("backups"),
            args.naming.labels("backups"),
            parent=self,
            keep=args.protect_data,
        )
        self.container = None
        self.register_outputs({"volume": self.volume.name})

    def run(self, plan: BackupPlan) -> None:
        """Declare the backup loop for `plan` (nothing when backups are off)."""
        args = self._args
        if not args.enabled:
            return
        self.container = service_container(
            f"{self._name}-container",
            naming=args.naming,
            role="backup",
            grace_seconds=STOP_GRACE_SECONDS,
            parent=self,
            depends_on=plan.depends_on,
            image=plan.image_id,
            user=plan.user,
            entrypoints=list(plan.entrypoints),
            envs=secret_env(
                [
                    *plan.env,
                    f"BACKUP_INTERVAL_HOURS={args.interval_hours}",
                    f"BACKUP_KEEP={args.keep}",
                    f"BACKUP_STATUS_DIR={STATUS_DIR}",
                ]
            ),
            healthcheck=backup_healthcheck(args.interval_hours).args(),
            volumes=[
                docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=BACKUP_PATH),
                *plan.volumes,
            ],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=plan.network)] if plan.network else None,
            # Nothing to reach: a copy from one volume to another needs no network.
            network_mode=None if plan.network else "none",
            uploads=list(plan.files) or None,
        )

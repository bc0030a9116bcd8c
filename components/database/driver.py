"""The backend's PostgreSQL driver: the backend image's own, or the pinned one installed from a package index.

ArgusAI's published backend image carries no PostgreSQL driver (its requirements.txt has none). The server
modes give the backend what it lacks, on whatever Docker host the provider reaches, at `pulumi up` (never
at a preview), from `pythonIndexUrl`:

Creates:
- `<name>-volume`: named volume at DRIVER_ROOT holding the installed packages (`<base>-pydeps`); a cache,
  not data (not protected: it is made again from the index whenever it is gone).
- `<name>-step` (per backend image, declared by `install`): a one-shot step (role `driver`) in the backend
  image, on the app network, that uses the image's own driver when it has one and otherwise installs the
  pinned packages into the volume (`components/scripts/install_driver.sh`). An index it cannot reach stops
  `pulumi up` naming `argusai:pythonIndexUrl`, before the backend is touched.

Every container of the backend image mounts the volume read-only and finds the driver on PYTHONPATH
(`directory`). With an image that carries its own driver nothing is installed, so the directory stays
empty and the image's own is the one imported.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from components.docker_common import data_volume
from components.naming import Naming
from components.scripts import IN_CONTAINER, INSTALL_DRIVER
from components.step import Step, StepArgs

#: The driver installed when the backend image carries none, pinned by this project: the module the backend
#: imports, and the packages (binary wheels: libpq included, no compiler needed).
DRIVERS = {
    "psycopg": ("psycopg", ("psycopg==3.3.9", "psycopg-binary==3.3.9")),
    "psycopg2": ("psycopg2", ("psycopg2-binary==2.9.13",)),
}
#: Where the volume is mounted.
DRIVER_ROOT = f"{IN_CONTAINER}/pydeps"
# pip on a slow link; an index answering nothing fails sooner (the script's own timeout and retries).
TIMEOUT_SECONDS = 600
ROOT_USER = "0"


@dataclass(frozen=True)
class DriverArgs:
    """Inputs of Driver."""

    naming: Naming
    """Physical names and labels."""
    driver: str
    """The driver DATABASE_URL names (`psycopg` or `psycopg2`)."""
    index_url: str
    """The package index it is installed from (`pythonIndexUrl`)."""
    network: pulumi.Input[str]
    """The network the install reaches the index through (the app network)."""
    log_volume: pulumi.Input[str]
    """A volume for the step's log (the backups volume), and where it is mounted."""
    log_mount: str
    """Where `log_volume` is mounted in the step."""
    depends_on: tuple[pulumi.Resource, ...] = ()
    """What must succeed first (the secrets' checks)."""


class Driver(pulumi.ComponentResource):
    """The driver volume, and the step that fills it for a backend image."""

    volume: docker.Volume

    def __init__(self, name: str, args: DriverArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare the volume; `install` declares the step for a backend image."""
        super().__init__("argusai:driver:Driver", name, None, opts)
        self._name = name
        self._args = args
        self.module, packages = DRIVERS[args.driver]
        self.packages = " ".join(packages)
        # Named after the pins: new pins install beside the old, never over files a backend has loaded.
        self.directory = f"{DRIVER_ROOT}/{'-'.join(p.replace('==', '-') for p in packages)}"
        self.volume = data_volume(
            f"{name}-volume",
            args.naming.physical_name("pydeps"),
            args.naming.labels("pydeps"),
            parent=self,
            keep=False,
            depends_on=args.depends_on,
        )
        self.register_outputs({"volume": self.volume.name})

    @property
    def mounts(self) -> list[docker.ContainerVolumeArgs]:
        """The volume, read-only, for every container of the backend image."""
        return [docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=DRIVER_ROOT, read_only=True)]

    def install(self, image_id: pulumi.Input[str], log_dir: str) -> Step:
        """The step that gives the backend image `image_id` its driver (its log in `log_dir`)."""
        args = self._args
        return Step(
            f"{self._name}-step",
            StepArgs(
                naming=args.naming,
                role="driver",
                image=image_id,
                # Root: the driver volume and the log's volume are root's.
                user=ROOT_USER,
                script=INSTALL_DRIVER.shell,
                volumes=[
                    docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=DRIVER_ROOT),
                    docker.ContainerVolumeArgs(volume_name=args.log_volume, container_path=args.log_mount),
                ],
                log_dir=log_dir,
                env=[
                    f"DRIVER_MODULE={self.module}",
                    f"DRIVER_PACKAGES={self.packages}",
                    f"DRIVER_DIR={self.directory}",
                    f"INDEX_URL={args.index_url}",
                ],
                networks=[args.network],
                files=INSTALL_DRIVER.uploads(),
                timeout_seconds=TIMEOUT_SECONDS,
                depends_on=list(args.depends_on),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

"""What runs inside containers, and how it gets there: as files, never in an environment variable.

A script here is one file (`sqlite_backup.py`, `pg_backup.sh`) or a package (`data_move/`). A container
that runs one gets its files as uploads under IN_CONTAINER, each named by its path in this project and
its SHA-256 (`source` + `source_hash`: pulumi-docker reads the file when it creates the container, and
the state keeps only the path and the hash, not the script). The provider runs with the project's
directory as its working directory, so the path is relative to it. A changed file changes its hash, which
replaces the container: a one-shot step runs again.

Python scripts run as `python -m <name>` with IN_CONTAINER on PYTHONPATH, leaving the working directory
at the image's own (the release's `/app`, whose `app` package the gate and the data move import).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pulumi_docker as docker

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
#: Where scripts are uploaded in a container.
IN_CONTAINER = "/opt/argusai"
PYTHONPATH_ENV = f"PYTHONPATH={IN_CONTAINER}"


@dataclass(frozen=True)
class Script:
    """One script of this folder (a file, or a package directory)."""

    name: str
    """Its file name (`pg_backup.sh`, `sqlite_backup.py`) or package name (`data_move`)."""
    needs: tuple[Script, ...] = ()
    """Other scripts of this folder it imports (uploaded with it)."""

    @property
    def path(self) -> Path:
        """Where it is in this project."""
        return HERE / self.name

    @cached_property
    def files(self) -> tuple[Path, ...]:
        """Its files (itself, or every Python module of the package), then those of the scripts it needs."""
        own = tuple(sorted(self.path.rglob("*.py"))) if self.path.is_dir() else (self.path,)
        return own + tuple(file for script in self.needs for file in script.files)

    def text(self) -> str:
        """The script itself (a single file)."""
        return self.path.read_text()

    def contents(self) -> dict[str, bytes]:
        """Its files as they land in a container: path there -> content."""
        return {f"{IN_CONTAINER}/{file.relative_to(HERE).as_posix()}": file.read_bytes() for file in self.files}

    def uploads(self) -> list[docker.ContainerUploadArgs]:
        """Its files as uploads under IN_CONTAINER, each by path and content hash."""
        return [
            docker.ContainerUploadArgs(
                file=f"{IN_CONTAINER}/{file.relative_to(HERE).as_posix()}",
                source=file.relative_to(PROJECT).as_posix(),
                source_hash=hashlib.sha256(file.read_bytes()).hexdigest(),
            )
            for file in self.files
        ]

    @property
    def module(self) -> str:
        """The Python module to run (`-m`)."""
        return self.name.removesuffix(".py")

    @property
    def argv(self) -> list[str]:
        """The command that runs it: `python -m <module>` (PYTHONPATH_ENV in its environment), or `sh <file>`."""
        if self.name.endswith(".sh"):
            return ["sh", f"{IN_CONTAINER}/{self.name}"]
        return ["python", "-m", self.module]

    @property
    def shell(self) -> str:
        """The same command as one line of shell (the container's environment holds PYTHONPATH)."""
        return " ".join(self.argv)


PG_BACKUP = Script("pg_backup.sh")
PG_VERSION = Script("pg_version.sh")
PGDATA_CHECK = Script("pgdata_check.sh")
PG_ROLE_PASSWORD = Script("pg_role_password.sh")
PG_UPGRADE = Script("pg_upgrade.sh")
SQLITE_BACKUP = Script("sqlite_backup.py")
SCHEMA_GATE = Script("schema_gate.py")
DATA_MOVE = Script("data_move")
FRONTEND_ORIGIN = Script("frontend_origin.sh")
INSTALL_DRIVER = Script("install_driver.sh")
ADMIN_SEED = Script("admin_seed.py")
KEY_ROTATION = Script("key_rotation.py")
# The data move is a server's part: its mode uploads it beside these.
RELEASE_STEPS = Script("release_steps.py", needs=(SCHEMA_GATE, KEY_ROTATION, ADMIN_SEED))

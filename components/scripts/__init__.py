"""What runs inside containers, and how it gets there: as files, never in an environment variable.

A script here is one file (`sqlite_backup.py`, `pg_backup.sh`) or a package (`data_move/`). A container
that runs one gets its files as uploads under IN_CONTAINER, each named by its path in this project and
its SHA-256 (`source` + `source_hash`: pulumi-docker reads the file when it creates the container, and
the state keeps only the path and the hash, not the script). The provider runs with the project's
directory as its working directory, so the path is relative to it. A changed file changes its hash, which
replaces the container: a one-shot step runs again.

Python scripts run as `python -m <name>` with IN_CONTAINER on PYTHONPATH, leaving the working directory
at the image's own (the release's `/app`, whose `app` package the gate and the data move import).

A script of several files (the release's steps: 13) goes as one upload: a zip of them (`bundle`), which
Python imports from when it is on PYTHONPATH (`python_path`). The provider copies each upload on its own
before the container starts, each copy a mount of the container's file system (some 75 ms on overlay2):
13 copies cost the release's steps about a second on the path to the backend. The zip is written under
BUNDLES, named by its content's hash, the first time a program run needs it (as Terraform's
`archive_file` writes its zip during a plan); it is the same bytes on every machine (stored, not
compressed; fixed times and modes; sorted), so the upload's hash only changes with a script.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pulumi_docker as docker

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent.parent
#: Where scripts are uploaded in a container.
IN_CONTAINER = "/opt/argusai"
PYTHONPATH_ENV = f"PYTHONPATH={IN_CONTAINER}"
#: Where the zips of scripts of several files are written, in the project (the provider reads them there).
BUNDLES = PROJECT / ".bundles"
# A zip's entries: the earliest time a zip can hold, and a plain file's mode (the same on every machine).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
ZIP_FILE_MODE = 0o644
HASH_IN_NAME = 16


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
        """Its files, each at its own path under IN_CONTAINER: path there -> content.

        As a test copies them in; `uploads()` sends a script of several files as one zip instead.
        """
        return {f"{IN_CONTAINER}/{file.relative_to(HERE).as_posix()}": file.read_bytes() for file in self.files}

    @property
    def bundled(self) -> bool:
        """Whether it goes as one zip (it has several files)."""
        return len(self.files) > 1

    @cached_property
    def _zip(self) -> bytes:
        """Its files in a zip, each at its path in this folder (so its module name): the same bytes anywhere."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for file in sorted(self.files, key=lambda f: f.relative_to(HERE).as_posix()):
                entry = zipfile.ZipInfo(file.relative_to(HERE).as_posix(), date_time=ZIP_EPOCH)
                entry.external_attr = ZIP_FILE_MODE << 16
                archive.writestr(entry, file.read_bytes())
        return buffer.getvalue()

    @cached_property
    def _zip_hash(self) -> str:
        """The zip's SHA-256: in its file's name, and the upload's `source_hash`."""
        return hashlib.sha256(self._zip).hexdigest()

    def bundle(self) -> Path:
        """Its zip under BUNDLES, written if it is not there yet (whole or not at all: renamed into place)."""
        path = BUNDLES / f"{self.module}-{self._zip_hash[:HASH_IN_NAME]}.zip"
        if not path.is_file():
            BUNDLES.mkdir(exist_ok=True)
            partial = path.with_name(f"{path.name}.{os.getpid()}.part")
            partial.write_bytes(self._zip)
            partial.replace(path)
        return path

    @property
    def python_path(self) -> str:
        """What a container running it puts on PYTHONPATH: its zip, or IN_CONTAINER."""
        return f"{IN_CONTAINER}/{self.module}.zip" if self.bundled else IN_CONTAINER

    def uploads(self) -> list[docker.ContainerUploadArgs]:
        """Its files as uploads under IN_CONTAINER, each by path and content hash; several as one zip."""
        if self.bundled:
            path = self.bundle()
            return [
                docker.ContainerUploadArgs(
                    file=self.python_path,
                    source=path.relative_to(PROJECT).as_posix(),
                    source_hash=self._zip_hash,
                )
            ]
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
BACKEND_SERVE = Script("backend_serve.py")
KEY_ROTATION = Script("key_rotation.py")
# The release's steps, each as one zip: a file's, and a server's with the data move (its mode's part).
RELEASE_STEPS = Script("release_steps.py", needs=(SCHEMA_GATE, KEY_ROTATION, ADMIN_SEED))
RELEASE_STEPS_WITH_MOVE = Script("release_steps.py", needs=(SCHEMA_GATE, KEY_ROTATION, ADMIN_SEED, DATA_MOVE))

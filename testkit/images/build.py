"""Build the stand-in images the integration tests deploy, from Debian packages.

No image registry is reachable from the test machines, so the three images
the Pulumi program deploys are made here: mmdebstrap bootstraps a minimal
Debian bookworm root file system holding only the packages an image needs,
and ``docker import`` turns its tarball into an image.

- ``argusai-test/postgres:15``: Debian's PostgreSQL 15 behind an entry point
  that follows the official ``postgres`` image's contract.
- ``argusai-test/backend:latest``: ``backend/app.py``, a stdlib HTTP stand-in
  for ArgusAI's FastAPI backend (PostgreSQL or SQLite).
- ``argusai-test/frontend:latest``: ``frontend/server.js``, a node stand-in
  for the Next.js frontend.

One more image is built only on request (``--only argusai-backend``), not by
default: ``argusai-test/argusai-backend:c5efc85``, the real ArgusAI backend
from its unmodified release source, found through the environment variable
``ARGUSAI_SOURCE`` (the release checkout's root). Its Python packages are
pinned in ``argusai/constraints.txt``, downloaded as wheels on this machine
with its own pip configuration and installed into a virtual environment in
the image without any index.

Each image carries the label ``argusai.recipe``: a SHA-256 over its recipe
(packages, build options, stand-in sources; for a release image also its
constraints and every file of the release source). An image whose tag already
carries the current hash is not built again, so a warm run takes seconds.
The root file system tarballs are also kept, outside the repository, in
``${XDG_CACHE_HOME:-$HOME/.cache}/argusai-infra/images``: an image removed from
the engine comes back with a plain import.

Run ``python -m testkit.images.build`` (root, with a running
engine: see ``scripts/docker-engine.sh``), or call :func:`ensure_images`.
The Debian mirror is read from this machine's apt configuration.
"""

from __future__ import annotations

import argparse
import fcntl
import fnmatch
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent

SUITE = "bookworm"
# Bump when this file changes how images are made in a way the recipes do not
# show, so that every cached image is rebuilt.
RECIPE_FORMAT = 1
RECIPE_LABEL = "argusai.recipe"
# Builds run side by side: on 2 cores the downloads and maintainer scripts of
# one overlap the dpkg unpacking of another (measured cold: 105 s one at a
# time, 80 s all three at once).
DEFAULT_JOBS = 3
# Copy chunk between mmdebstrap, the tarball cache and `docker import`.
CHUNK_BYTES = 1 << 20
# Lines of a failed step's log shown in the error.
LOG_TAIL_LINES = 40
MEBIBYTE = 1 << 20

# A mirror whose Release file has expired (a snapshot) must still be usable.
APT_OPTIONS = ('Acquire::Check-Valid-Until "false"',)

# What no image needs: documentation (but the copyright files), manual pages,
# translations, locale sources (the images use the built-in C.UTF-8).
COMMON_DPKG_OPTIONS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
    "path-exclude=/usr/share/i18n/locales/*",
    "path-exclude=/usr/share/i18n/charmaps/*",
)

# Run in every image: the host's resolver and name (Docker provides its own
# at run time), the mirror and the build-time apt/dpkg settings are not part
# of the image.
COMMON_CLEANUP_HOOKS = (
    'rm -f "$1/etc/resolv.conf" "$1/etc/hostname" "$1/etc/apt/sources.list"',
    'rm -f "$1/etc/apt/apt.conf.d/99mmdebstrap"',
)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class StandInFile:
    """A file of this directory installed into the image."""

    source: str  # relative to this directory
    target: str  # absolute path in the image
    mode: str = "0644"


@dataclass(frozen=True)
class PythonRelease:
    """A Python application installed from a release checkout outside the repository.

    The build host downloads the pinned wheels (its pip configuration decides
    where from); the image installs them with ``pip --no-index`` into a virtual
    environment and gets the application's files, owned by an unprivileged user.
    The recipe's hooks reach the staged wheels and the application tarball
    through the environment variables ``RELEASE_WHEELS`` and ``RELEASE_APP_TAR``.
    """

    source_env: str  # environment variable naming the release checkout's root
    subdir: str  # the application's directory in the checkout
    target: str  # where the application goes in the image
    constraints: str  # exact pins, relative to this directory
    # Requirements of the release not installed (names as in requirements.txt).
    left_out: tuple[str, ...]
    # Requirements added to the release's own (constraints cannot add packages).
    extra_requirements: tuple[str, ...]
    # Pure-Python packages that publish only source archives: built into
    # py3-none-any wheels on the host.
    sdist_only: tuple[str, ...]
    # Paths never copied, besides the release's .dockerignore: glob patterns
    # matched against every path component.
    always_excluded: tuple[str, ...]
    uid: int
    python_version: str = "3.11"
    glibc_minor: int = 36  # bookworm's glibc 2.36: newest manylinux tag the image runs
    requirements: str = "requirements.txt"  # relative to subdir

    def source_root(self) -> Path:
        """The release checkout, from the environment; BuildError when unusable."""
        value = os.environ.get(self.source_env)
        if not value:
            raise BuildError(
                f"{self.source_env} is not set: point it at the release checkout's root "
                f"(the directory holding {self.subdir}/{self.requirements})"
            )
        root = Path(value)
        if not (root / self.subdir / self.requirements).is_file():
            raise BuildError(
                f"{self.source_env}={value} is not the release checkout: "
                f"{self.subdir}/{self.requirements} is missing there"
            )
        return root

    def app_dir(self) -> Path:
        """The application's directory in the release checkout."""
        return self.source_root() / self.subdir


@dataclass(frozen=True)
class Recipe:
    """Everything that determines one image's content."""

    tag: str
    packages: tuple[str, ...]
    changes: tuple[str, ...]  # Dockerfile instructions for `docker import --change`
    files: tuple[StandInFile, ...] = ()
    dpkg_options: tuple[str, ...] = ()
    essential_hooks: tuple[str, ...] = ()
    customize_hooks: tuple[str, ...] = ()
    variant: str = "essential"
    suite: str = SUITE
    release: PythonRelease | None = None

    @property
    def name(self) -> str:
        """Short name, e.g. ``postgres``, for logs and cache files."""
        return self.tag.split("/")[-1].split(":")[0]

    @property
    def repository(self) -> str:
        """The tag without its version, e.g. ``argusai-test/postgres``."""
        return self.tag.rsplit(":", 1)[0]

    def digest(self) -> str:
        """SHA-256 over the recipe, its stand-in files and, for a release, its pins and source."""
        sha = hashlib.sha256()
        payload = {
            "format": RECIPE_FORMAT,
            "recipe": asdict(self),
            "common_dpkg_options": COMMON_DPKG_OPTIONS,
            "common_cleanup_hooks": COMMON_CLEANUP_HOOKS,
            "apt_options": APT_OPTIONS,
        }
        sha.update(json.dumps(payload, sort_keys=True).encode())
        for item in self.files:
            sha.update(b"\0" + item.source.encode() + b"\0")
            sha.update((HERE / item.source).read_bytes())
        if self.release is not None:
            sha.update(b"\0constraints\0" + (HERE / self.release.constraints).read_bytes())
            sha.update(b"\0source\0" + tree_digest(self.release.app_dir()).encode())
        return sha.hexdigest()


PG_MAJOR = "15"
PG_BIN = f"/usr/lib/postgresql/{PG_MAJOR}/bin"

POSTGRES = Recipe(
    tag=f"argusai-test/postgres:{PG_MAJOR}",
    packages=(f"postgresql-{PG_MAJOR}", "dumb-init"),
    files=(
        StandInFile(
            "postgres/docker-entrypoint.sh",
            "/usr/local/bin/docker-entrypoint.sh",
            "0755",
        ),
        StandInFile("postgres/postgres-start.sh", "/usr/local/bin/postgres-start.sh", "0755"),
    ),
    # The LLVM JIT provider and what only it needs (libLLVM, libz3, bitcode)
    # are about 150 MiB; the entry point sets jit = off.
    dpkg_options=(
        f"path-exclude=/usr/lib/postgresql/{PG_MAJOR}/lib/bitcode/*",
        f"path-exclude=/usr/lib/postgresql/{PG_MAJOR}/lib/llvmjit*",
        "path-exclude=/usr/lib/*/libLLVM-*",
        "path-exclude=/usr/lib/*/libz3.so*",
    ),
    # The package would otherwise create a "main" cluster at install time;
    # the entry point initialises its own data directory instead.
    essential_hooks=(
        'mkdir -p "$1/etc/postgresql-common/createcluster.d"',
        "echo 'create_main_cluster = false' > \"$1/etc/postgresql-common/createcluster.d/argusai-no-main.conf\"",
    ),
    customize_hooks=(
        'mkdir -p "$1/docker-entrypoint-initdb.d" "$1/var/lib/postgresql/data" "$1/run/postgresql"',
        'chroot "$1" chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql',
        'chmod 0700 "$1/var/lib/postgresql/data"',
        'chmod 3777 "$1/run/postgresql"',
    ),
    changes=(
        f"ENV PATH={PG_BIN}:{DEFAULT_PATH}",
        f"ENV PG_MAJOR={PG_MAJOR}",
        "ENV PGDATA=/var/lib/postgresql/data",
        "ENV LANG=C.UTF-8",
        'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]',
        'CMD ["postgres"]',
        "EXPOSE 5432",
    ),
)

BACKEND = Recipe(
    tag="argusai-test/backend:latest",
    packages=(
        "python3",
        "python-is-python3",
        "python3-psycopg2",
        "python3-cryptography",
        "dumb-init",
    ),
    files=(StandInFile("backend/app.py", "/app/app.py"),),
    customize_hooks=('mkdir -p "$1/app/data"',),
    changes=(
        f"ENV PATH={DEFAULT_PATH}",
        "ENV LANG=C.UTF-8",
        "ENV PYTHONUNBUFFERED=1",
        "ENV PYTHONDONTWRITEBYTECODE=1",
        "WORKDIR /app",
        # dumb-init as PID 1: a sidecar command run in this image (a python
        # backup loop without signal handlers) still stops on SIGTERM.
        'ENTRYPOINT ["dumb-init", "--"]',
        'CMD ["python", "/app/app.py"]',
        "EXPOSE 8000",
    ),
)

FRONTEND_UID = 1000
FRONTEND = Recipe(
    tag="argusai-test/frontend:latest",
    packages=("nodejs", "dumb-init"),
    files=(StandInFile("frontend/server.js", "/app/server.js"),),
    # An unprivileged user, as the Next.js image runs as; no passwd package
    # in the essential set, so the entries are written directly.
    customize_hooks=(
        f"echo 'node:x:{FRONTEND_UID}:{FRONTEND_UID}:node:/app:/usr/sbin/nologin' >> \"$1/etc/passwd\"",
        f"echo 'node:x:{FRONTEND_UID}:' >> \"$1/etc/group\"",
    ),
    changes=(
        f"ENV PATH={DEFAULT_PATH}",
        "ENV LANG=C.UTF-8",
        "ENV NODE_ENV=production",
        "WORKDIR /app",
        "USER node",
        'ENTRYPOINT ["dumb-init", "--"]',
        'CMD ["node", "/app/server.js"]',
        "EXPOSE 3000",
    ),
)

ARGUSAI_SOURCE_ENV = "ARGUSAI_SOURCE"
ARGUSAI_RELEASE = "c5efc85"  # commit of the release checkout the pins were made for
APP_USER = "appuser"
APP_UID = 1000
VENV = "/opt/venv"
# Inside the chroot: no host pip configuration or PIP_* variable, only the staged wheels.
CHROOT_PIP = (
    f'chroot "$1" env -i PATH={DEFAULT_PATH} PIP_CONFIG_FILE=/dev/null PIP_NO_CACHE_DIR=1 '
    f"PIP_DISABLE_PIP_VERSION_CHECK=1 {VENV}/bin/pip"
)

ARGUSAI_BACKEND = Recipe(
    tag=f"argusai-test/argusai-backend:{ARGUSAI_RELEASE}",
    # The release's Dockerfile also installs ffmpeg, libgl1, libglib2.0-0 and
    # libpq5. None is needed: the manylinux wheels of av and
    # opencv-python-headless carry their own FFmpeg libraries (av.libs,
    # opencv_python_headless.libs), the headless OpenCV needs no libGL, and
    # psycopg-binary carries its own libpq. But the wheels of numpy, opencv,
    # grpcio and others link the system's libstdc++ (not in the essential set).
    # python3-venv gives the venv its pip.
    packages=("python3", "python3-venv", "libstdc++6", "ca-certificates"),
    release=PythonRelease(
        source_env=ARGUSAI_SOURCE_ENV,
        subdir="backend",
        target="/app",
        constraints="argusai/constraints.txt",
        # Why each is left out: see argusai/constraints.txt (loaded only on use, or test-only).
        left_out=("sentence-transformers", "firebase-admin", "pytest", "pytest-asyncio", "pytest-cov"),
        extra_requirements=("psycopg[binary]", "greenlet"),
        sdist_only=("wsdiscovery", "onvif-zeep", "http-ece"),
        always_excluded=("__pycache__", "*.py[cod]", "tests", ".pytest_cache", ".env"),
        uid=APP_UID,
    ),
    customize_hooks=(
        # The user the release's Dockerfile creates (useradd --create-home
        # --uid 1000); no passwd package in the essential set.
        f"echo '{APP_USER}:x:{APP_UID}:{APP_UID}::/home/{APP_USER}:/bin/bash' >> \"$1/etc/passwd\"",
        f"echo '{APP_USER}:x:{APP_UID}:' >> \"$1/etc/group\"",
        f'install -d -o {APP_UID} -g {APP_UID} -m 0755 "$1/home/{APP_USER}"',
        f'chroot "$1" python3 -m venv {VENV}',
        'mkdir "$1/tmp/release-wheels" && cp -a "$RELEASE_WHEELS/." "$1/tmp/release-wheels/"',
        f"{CHROOT_PIP} install --no-index --find-links /tmp/release-wheels"
        " -r /tmp/release-wheels/requirements.txt -c /tmp/release-wheels/constraints.txt",
        f"{CHROOT_PIP} check",
        'rm -rf "$1/tmp/release-wheels"',
        # /app and /app/data owned by appuser, as `chown -R appuser /app` upstream.
        'tar -C "$1" --numeric-owner --same-owner -xf "$RELEASE_APP_TAR"',
        # Byte code for the application, as appuser: PYTHONDONTWRITEBYTECODE
        # keeps it from being written at run time, and imports are slow enough.
        f'chroot --userspec={APP_UID}:{APP_UID} "$1" {VENV}/bin/python -m compileall -q /app',
    ),
    changes=(
        f"ENV PATH={VENV}/bin:{DEFAULT_PATH}",
        "ENV LANG=C.UTF-8",
        "ENV PYTHONPATH=/app",
        "ENV PYTHONDONTWRITEBYTECODE=1",
        "ENV PYTHONUNBUFFERED=1",
        "ENV DEBUG=false",
        "ENV LOG_LEVEL=INFO",
        # LiteLLM would fetch its model price map from the internet at every
        # start; use the copy bundled with the package.
        "ENV LITELLM_LOCAL_MODEL_COST_MAP=True",
        "WORKDIR /app",
        f"USER {APP_USER}",
        'CMD ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000"]',
        "EXPOSE 8000",
    ),
)

RECIPES: tuple[Recipe, ...] = (POSTGRES, BACKEND, FRONTEND)
# Buildable with --only: the release image is not needed by the tests yet.
ALL_RECIPES: tuple[Recipe, ...] = (*RECIPES, ARGUSAI_BACKEND)


class BuildError(RuntimeError):
    """An image could not be built."""


def log(message: str) -> None:
    """Progress line, flushed at once (builds may run side by side)."""
    print(f"[images] {message}", flush=True)


def cache_dir() -> Path:
    """Tarball and log cache, outside the repository."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "argusai-infra" / "images"


def tool(name: str) -> str:
    """Absolute path of a required program (never a PATH lookup at exec time)."""
    path = shutil.which(name)
    if path is None:
        raise BuildError(f"{name} not found; run scripts/docker-engine.sh as root")
    return path


# A docker or apt query on a cold machine (an engine still starting, apt reading its lists).
COMMAND_TIMEOUT_SECONDS = 300
# `docker import` of a root file system of a GiB or more on a cold disk.
IMPORT_TIMEOUT_SECONDS = 1800


def run(args: Sequence[str], timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
    """Run a command and return its stdout; raise BuildError on failure or after `timeout` seconds."""
    try:
        proc = subprocess.run(  # noqa: S603 - fixed tool names, arguments built here
            list(args), capture_output=True, text=True, check=False, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{shlex.join(args)} timed out after {timeout}s") from exc
    if proc.returncode != 0:
        raise BuildError(f"{shlex.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def debian_sources(suite: str = SUITE) -> list[str]:
    """One-line apt sources for SUITE, -updates and -security from apt's config.

    The mirror is whatever this machine's apt uses, so nothing about it is
    written into the repository.
    """
    # --no-release-info lists the configured repositories even before any
    # `apt-get update` (suite names as written in the sources); the second
    # call adds the codenames from downloaded Release files, for sources that
    # say "stable" or "oldstable" instead of the codename.
    fmt = "$(TARGET_OF) $(REPO_URI) $(RELEASE) $(CODENAME)"
    out = run([tool("apt-get"), "indextargets", "--no-release-info", "--format", fmt])
    out += run([tool("apt-get"), "indextargets", "--format", fmt])
    repos: dict[str, str] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 3 or fields[0] != "deb":
            continue
        uri, names = fields[1], fields[2:]
        for name in names:
            if not name.startswith("$("):  # a field apt had no value for
                repos.setdefault(name, uri)
    if suite not in repos:
        raise BuildError(
            f"apt on this machine has no '{suite}' repository configured "
            f"(apt-get indextargets lists none); the images need Debian {suite} packages"
        )
    sources = [f"deb {repos[suite]} {suite} main"]
    # Without an explicit -updates entry, the main mirror carries it.
    sources.append(f"deb {repos.get(f'{suite}-updates', repos[suite])} {suite}-updates main")
    if f"{suite}-security" in repos:
        sources.append(f"deb {repos[f'{suite}-security']} {suite}-security main")
    else:
        log(f"warning: no {suite}-security repository in apt's configuration")
    return sources


def tree_digest(root: Path) -> str:
    """SHA-256 over every file under ROOT: relative path, executable bit, content (or link target)."""
    sha = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            sha.update(f"\0link\0{rel}\0{os.readlink(path)}".encode())
        elif path.is_file():
            executable = "x" if path.stat().st_mode & 0o111 else "-"
            sha.update(f"\0file\0{rel}\0{executable}\0".encode())
            sha.update(path.read_bytes())
    return sha.hexdigest()


def _glob_regex(pattern: str) -> str:
    """A .dockerignore glob as a regex: ``*`` and ``?`` stay within one path component."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                out.append(pattern[i : end + 1].replace("[!", "[^", 1))
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def dockerignore_rules(app_dir: Path) -> list[tuple[re.Pattern[str], bool]]:
    """(pattern, excludes) pairs of APP_DIR's .dockerignore, in order (the last match wins, as in Docker)."""
    path = app_dir / ".dockerignore"
    if not path.is_file():
        return []
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        excludes = not line.startswith("!")
        line = line.lstrip("!").strip().strip("/")
        if line:
            # Anchored at the build context, like Docker; a match also covers what is below it.
            rules.append((re.compile(_glob_regex(line) + "(/.*)?"), excludes))
    return rules


def release_files(release: PythonRelease) -> list[Path]:
    """The release files the image gets: all but those its .dockerignore or ALWAYS_EXCLUDED drop."""
    app_dir = release.app_dir()
    rules = dockerignore_rules(app_dir)
    selected = []
    for path in sorted(app_dir.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        rel = path.relative_to(app_dir).as_posix()
        if any(fnmatch.fnmatchcase(part, glob) for part in rel.split("/") for glob in release.always_excluded):
            continue
        excluded = False
        for pattern, excludes in rules:
            if pattern.fullmatch(rel):
                excluded = excludes
        if not excluded:
            selected.append(path)
    if not selected:
        raise BuildError(f"{app_dir}: no files left to copy into the image")
    return selected


def write_app_tarball(release: PythonRelease, tarball: Path) -> None:
    """TARBALL holds the release files under TARGET (and an empty TARGET/data), owned by UID."""
    app_dir = release.app_dir()
    target = release.target.strip("/")

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = release.uid
        info.uname = info.gname = ""
        return info

    def directory(name: str) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.mtime = int(time.time())
        return owned(info)

    with tarfile.open(tarball, "w", format=tarfile.PAX_FORMAT) as tar:
        made = {target}
        tar.addfile(directory(target))
        tar.addfile(directory(f"{target}/data"))
        for path in release_files(release):
            rel = path.relative_to(app_dir)
            for parent in reversed(rel.parents[:-1]):
                name = f"{target}/{parent.as_posix()}"
                if name not in made:
                    made.add(name)
                    tar.addfile(directory(name))
            info = owned(tar.gettarinfo(path, f"{target}/{rel.as_posix()}"))
            info.mode = 0o755 if info.mode & 0o111 else 0o644
            if info.isreg():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)


def _requirement_name(line: str) -> str | None:
    """Normalised project name of a requirements.txt line, or None for a blank/comment line."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#", 1)[0])
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else None


def release_requirements(release: PythonRelease) -> str:
    """The release's requirements.txt without the left-out packages, plus the extra requirements."""
    left_out = {_requirement_name(name) for name in release.left_out}
    kept: list[str] = []
    seen: set[str] = set()
    for line in (release.app_dir() / release.requirements).read_text().splitlines():
        name = _requirement_name(line)
        if name is None:
            continue
        seen.add(name)
        if name not in left_out:
            kept.append(line.split("#", 1)[0].strip())
    if missing := left_out - seen:
        raise BuildError(f"left-out requirements not in the release's {release.requirements}: {sorted(missing)}")
    return "\n".join([*kept, *release.extra_requirements]) + "\n"


def _pins(constraints: Path) -> dict[str, str]:
    pins = {}
    for line in constraints.read_text().splitlines():
        name = _requirement_name(line)
        if name is not None:
            pins[name] = line.split("#", 1)[0].strip()
    return pins


def _host_pip(python_version: str) -> list[str]:
    """A pip of this machine running on Python PYTHON_VERSION (markers are evaluated by the host)."""
    candidates = [sys.executable, shutil.which(f"python{python_version}"), shutil.which("python3")]
    probe = "import sys, pip; print('%d.%d' % sys.version_info[:2])"
    for python in candidates:
        if not python:
            continue
        proc = subprocess.run(  # noqa: S603 - interpreter found here, fixed probe
            [python, "-c", probe], capture_output=True, text=True, check=False, timeout=60
        )
        if proc.returncode == 0 and proc.stdout.strip() == python_version:
            return [python, "-m", "pip"]
    raise BuildError(f"no Python {python_version} with pip on this machine to download the release's wheels")


# pip calls on a cold machine: a few hundred MiB of wheels.
PIP_TIMEOUT_SECONDS = 1800


def _pip(pip: Sequence[str], args: Sequence[str], logfile: Path) -> None:
    with logfile.open("ab") as out:
        out.write(f"$ {shlex.join([*pip, *args])}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(  # noqa: S603 - arguments built here
                [*pip, *args], stdout=out, stderr=out, check=False, timeout=PIP_TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"pip {args[0]} timed out after {PIP_TIMEOUT_SECONDS}s:\n{_tail(logfile)}") from exc
    if proc.returncode != 0:
        raise BuildError(f"pip {args[0]} failed ({proc.returncode}):\n{_tail(logfile)}")


def stage_wheels(recipe: Recipe) -> Path:
    """Download (once per pin set) every wheel RECIPE's release installs; return their directory.

    The directory also holds the ``requirements.txt`` and ``constraints.txt``
    the image installs with. It is cached under :func:`cache_dir`, keyed by a
    hash of the constraints, the requirements and the target platform.
    """
    release = recipe.release
    assert release is not None  # noqa: S101 - only called for release recipes
    constraints = HERE / release.constraints
    requirements = release_requirements(release)
    arch = platform.machine()
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(release.glibc_minor, 16, -1)]
    platforms += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    key = hashlib.sha256(
        json.dumps(
            [constraints.read_text(), requirements, release.sdist_only, release.python_version, platforms]
        ).encode()
    ).hexdigest()[:16]
    wheels_root = cache_dir() / "wheels"
    wheels = wheels_root / f"{recipe.name}-{key}"
    if (wheels / "constraints.txt").is_file():
        return wheels
    wheels_root.mkdir(parents=True, exist_ok=True)
    for old in wheels_root.glob(f"{recipe.name}-*"):
        shutil.rmtree(old)  # stale pin sets, or a download that was interrupted
    partial = wheels_root / f"{recipe.name}-{key}.{os.getpid()}.part"
    partial.mkdir()
    logfile = cache_dir() / f"{recipe.name}-wheels.log"
    logfile.write_bytes(b"")
    pip = _host_pip(release.python_version)
    pins = _pins(constraints)
    log(f"{recipe.tag}: downloading wheels for {len(pins)} pinned packages")

    sdists = []
    for name in release.sdist_only:
        if (pin := pins.get(_requirement_name(name) or "")) is None:
            raise BuildError(f"{name} has no pin in {release.constraints}")
        sdists.append(pin)
    _pip(pip, ["wheel", "--no-deps", "--no-binary=:all:", "--wheel-dir", str(partial), *sdists], logfile)
    if impure := [whl.name for whl in partial.glob("*.whl") if not whl.name.endswith("-none-any.whl")]:
        raise BuildError(f"source-only packages built platform wheels: {impure}")

    (partial / "requirements.txt").write_text(requirements)
    shutil.copyfile(constraints, partial / "constraints.txt.part")
    args = ["download", "--only-binary=:all:", "--python-version", release.python_version]
    args += ["--implementation", "cp", "--abi", f"cp{release.python_version.replace('.', '')}"]
    args += [arg for name in platforms for arg in ("--platform", name)]
    args += ["--find-links", str(partial), "--dest", str(partial)]
    args += ["-r", str(partial / "requirements.txt"), "-c", str(partial / "constraints.txt.part")]
    _pip(pip, args, logfile)
    # The marker of a complete download is constraints.txt itself.
    (partial / "constraints.txt.part").rename(partial / "constraints.txt")
    partial.rename(wheels)
    return wheels


def image_label(tag: str) -> tuple[str, str] | None:
    """(image id, recipe label) of TAG, or None when there is no such image."""
    proc = subprocess.run(  # noqa: S603 - fixed docker invocation
        [
            tool("docker"),
            "image",
            "inspect",
            "--format",
            f'{{{{.Id}}}} {{{{index .Config.Labels "{RECIPE_LABEL}"}}}}',
            tag,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )
    if proc.returncode != 0:
        return None
    image_id, _, label = proc.stdout.strip().partition(" ")
    return image_id, label


def image_size(image_id: str) -> int:
    """Size of an image in bytes."""
    return int(run([tool("docker"), "image", "inspect", "--format", "{{.Size}}", image_id]))


def mmdebstrap_command(recipe: Recipe, sources: Sequence[str]) -> list[str]:
    """The mmdebstrap call that writes RECIPE's root file system as a tar to stdout."""
    cmd = [
        tool("mmdebstrap"),
        f"--variant={recipe.variant}",
        "--format=tar",
        f"--include={','.join(recipe.packages)}",
    ]
    cmd += [f"--aptopt={opt}" for opt in APT_OPTIONS]
    cmd += [f"--dpkgopt={opt}" for opt in COMMON_DPKG_OPTIONS + recipe.dpkg_options]
    cmd += [f"--essential-hook={hook}" for hook in recipe.essential_hooks]
    for item in recipe.files:
        # Host paths are only known here, never part of the recipe's hash.
        cmd.append(
            f'--customize-hook=install -D -m {item.mode} {shlex.quote(str(HERE / item.source))} "$1{item.target}"'
        )
    cmd += [f"--customize-hook={hook}" for hook in recipe.customize_hooks]
    cmd += [f"--customize-hook={hook}" for hook in COMMON_CLEANUP_HOOKS]
    cmd += [recipe.suite, "-", *sources]
    return cmd


def import_command(recipe: Recipe, digest: str) -> list[str]:
    """`docker import` reading a tarball from stdin, with the image config."""
    cmd = [tool("docker"), "import"]
    for change in (*recipe.changes, f"LABEL {RECIPE_LABEL}={digest}"):
        cmd += ["--change", change]
    cmd += ["-", recipe.tag]
    return cmd


def _pump(source: IO[bytes], sinks: Sequence[IO[bytes]]) -> None:
    """Copy SOURCE to every sink until EOF, then close the sinks."""
    try:
        while chunk := source.read(CHUNK_BYTES):
            for sink in sinks:
                sink.write(chunk)
    finally:
        for sink in sinks:
            sink.close()


def _tail(path: Path) -> str:
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


def _import_tarball(recipe: Recipe, digest: str, tarball: Path, logfile: Path) -> None:
    with tarball.open("rb") as tar, logfile.open("ab") as err:
        proc = subprocess.run(  # noqa: S603 - fixed docker invocation
            import_command(recipe, digest),
            stdin=tar,
            stdout=err,
            stderr=err,
            check=False,
            timeout=IMPORT_TIMEOUT_SECONDS,
        )
    if proc.returncode != 0:
        raise BuildError(f"{recipe.tag}: docker import failed:\n{_tail(logfile)}")


# Children of running builds, stopped when the caller is interrupted (they
# run in their own process groups, so a Ctrl-C does not reach them).
_children: set[subprocess.Popen[bytes]] = set()
_children_lock = threading.Lock()


def _spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(list(args), process_group=0, **kwargs)  # noqa: S603 - tools and arguments built here
    with _children_lock:
        _children.add(proc)
    return proc


def _reap(proc: subprocess.Popen[bytes]) -> int:
    returncode = proc.wait()
    with _children_lock:
        _children.discard(proc)
    return returncode


def _stop_children() -> None:
    with _children_lock:
        running = list(_children)
    for proc in running:
        # SIGTERM, not SIGKILL: mmdebstrap then unmounts and removes its chroot.
        proc.terminate()


def _bootstrap_and_import(
    recipe: Recipe,
    digest: str,
    sources: Sequence[str],
    tarball: Path,
    logfile: Path,
    env: dict[str, str] | None = None,
) -> None:
    """Stream mmdebstrap's tarball into `docker import` and into the cache (ENV: mmdebstrap's environment)."""
    partial = tarball.with_name(f"{tarball.name}.{os.getpid()}.part")
    with logfile.open("wb") as err:
        err.write(f"$ {shlex.join(mmdebstrap_command(recipe, sources))}\n".encode())
        err.flush()
        # Own process group: on failure mmdebstrap sends SIGHUP to its whole
        # group, which would otherwise kill this process and its callers.
        bootstrap = _spawn(mmdebstrap_command(recipe, sources), stdout=subprocess.PIPE, stderr=err, env=env)
        importer = _spawn(import_command(recipe, digest), stdin=subprocess.PIPE, stdout=err, stderr=err)
        # A hung download or import must not hang the test run: stop both after the build timeout (the
        # pipeline then fails below like any other failed build).
        watchdog = threading.Timer(IMPORT_TIMEOUT_SECONDS, lambda: (bootstrap.terminate(), importer.terminate()))
        watchdog.daemon = True
        watchdog.start()
        if bootstrap.stdout is None or importer.stdin is None:  # pipes were requested
            raise BuildError(f"{recipe.tag}: could not connect the build pipeline")
        pump_error: OSError | None = None
        try:
            with partial.open("wb") as cache_file:
                _pump(bootstrap.stdout, [importer.stdin, cache_file])
        except OSError as exc:  # docker import died early, or the cache disk is full
            pump_error = exc
            # SIGTERM, not SIGKILL: mmdebstrap then unmounts and removes its chroot.
            bootstrap.terminate()
            bootstrap.stdout.close()
        bootstrap_rc = _reap(bootstrap)
        import_rc = _reap(importer)
        watchdog.cancel()
    if pump_error is not None or bootstrap_rc != 0 or import_rc != 0:
        partial.unlink(missing_ok=True)
        if pump_error is not None:
            step = f"streaming the root file system ({pump_error})"
        else:
            step = "mmdebstrap" if bootstrap_rc != 0 else "docker import"
        raise BuildError(f"{recipe.tag}: {step} failed:\n{_tail(logfile)}")
    partial.replace(tarball)


def _remove_if_dangling(image_id: str) -> None:
    """Drop a replaced image unless something still uses it (best effort)."""
    subprocess.run(  # noqa: S603 - fixed docker invocation
        [tool("docker"), "image", "rm", image_id], capture_output=True, check=False, timeout=COMMAND_TIMEOUT_SECONDS
    )


def build_image(
    recipe: Recipe,
    sources: Callable[[], Sequence[str]],
    force: bool = False,
    use_tarball_cache: bool = True,
) -> tuple[str, bool]:
    """Make sure RECIPE's image exists with the current hash.

    Args:
        recipe: the image to make.
        sources: gives the apt sources; only called when bootstrapping.
        force: rebuild even when the image's recipe hash matches.
        use_tarball_cache: import a cached root file system when there is one.

    Returns:
        The image id and whether anything was built or imported.
    """
    digest = recipe.digest()
    current = image_label(recipe.tag)
    if current and current[1] == digest and not force:
        return current[0], False

    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / f"{recipe.name}-{digest[:16]}.tar"
    logfile = cache / f"{recipe.name}.log"
    started = time.monotonic()
    if use_tarball_cache and tarball.exists() and not force:
        log(f"{recipe.tag}: importing cached root file system {tarball.name}")
        logfile.write_bytes(b"")
        _import_tarball(recipe, digest, tarball, logfile)
    elif recipe.release is not None:
        wheels = stage_wheels(recipe)
        with tempfile.TemporaryDirectory(dir=cache, prefix=f"{recipe.name}-stage-") as stage:
            app_tarball = Path(stage) / "app.tar"
            write_app_tarball(recipe.release, app_tarball)
            env = {**os.environ, "RELEASE_WHEELS": str(wheels), "RELEASE_APP_TAR": str(app_tarball)}
            log(f"{recipe.tag}: bootstrapping ({', '.join(recipe.packages)}) and installing the release")
            _bootstrap_and_import(recipe, digest, sources(), tarball, logfile, env)
        if not use_tarball_cache:
            tarball.unlink(missing_ok=True)
    else:
        log(f"{recipe.tag}: bootstrapping ({', '.join(recipe.packages)})")
        _bootstrap_and_import(recipe, digest, sources(), tarball, logfile)
        if not use_tarball_cache:
            tarball.unlink(missing_ok=True)
    # Older tarballs of this image are stale now, and so are partial ones left
    # by an interrupted run (the build lock is held: none is being written).
    for old in [*cache.glob(f"{recipe.name}-*.tar"), *cache.glob(f"{recipe.name}-*.part")]:
        if old != tarball:
            old.unlink(missing_ok=True)

    built = image_label(recipe.tag)
    if built is None or built[1] != digest:
        raise BuildError(f"{recipe.tag}: image missing after the build")
    if current and current[0] != built[0]:
        _remove_if_dangling(current[0])
    elapsed = time.monotonic() - started
    size = image_size(built[0]) / MEBIBYTE
    log(f"{recipe.tag}: built in {elapsed:.1f}s, {size:.0f} MiB, {built[0][:19]}")
    return built[0], True


def ensure_images(
    force: bool = False,
    jobs: int = DEFAULT_JOBS,
    use_tarball_cache: bool = True,
    recipes: Sequence[Recipe] = RECIPES,
) -> dict[str, str]:
    """Build whichever stand-in images are missing or out of date.

    Args:
        force: rebuild even images whose recipe hash matches.
        jobs: how many images to build at the same time.
        use_tarball_cache: keep/import root file system tarballs from the cache.
        recipes: which images (default: the three stand-ins, not ARGUSAI_BACKEND).

    Returns:
        Image tag -> image id.

    Raises:
        BuildError: a tool is missing or a build failed.
    """
    for name in ("docker", "mmdebstrap", "apt-get"):
        tool(name)  # fail early, before any build starts
    started = time.monotonic()
    with _exclusive_build_lock():
        images = _ensure_locked(force, jobs, use_tarball_cache, recipes)
    log(f"done in {time.monotonic() - started:.1f}s")
    return images


@contextmanager
def _exclusive_build_lock() -> Iterator[None]:
    """Serialise builds across processes (parallel test runs, several users).

    Two builds of one image at once would share its tarball cache file and
    replace each other's tags; the second caller waits instead and then
    finds the images up to date.
    """
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "build.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log("another build is running; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _ensure_locked(force: bool, jobs: int, use_tarball_cache: bool, recipes: Sequence[Recipe]) -> dict[str, str]:
    # Read the mirror once, and only when something has to be bootstrapped.
    sources_lock = threading.Lock()
    sources: list[str] = []

    def get_sources() -> list[str]:
        with sources_lock:
            if not sources:
                sources.extend(debian_sources())
            return sources

    def one(recipe: Recipe) -> tuple[str, bool]:
        return build_image(recipe, get_sources, force, use_tarball_cache)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        try:
            results = list(pool.map(one, recipes))
        except BaseException:
            # Interrupted, or one build failed: stop the others before the
            # pool waits for them.
            _stop_children()
            raise

    images: dict[str, str] = {}
    for recipe, (image_id, built) in zip(recipes, results, strict=True):
        images[recipe.tag] = image_id
        if not built:
            size = image_size(image_id) / MEBIBYTE
            log(f"{recipe.tag}: up to date, {size:.0f} MiB, {image_id[:19]}")
    return images


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild every image")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="images built at the same time")
    parser.add_argument(
        "--no-tarball-cache",
        action="store_true",
        help="neither use nor keep root file system tarballs",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[recipe.name for recipe in ALL_RECIPES],
        help="build only this image (repeatable); argusai-backend is built only when named",
    )
    args = parser.parse_args(argv)
    recipes = [r for r in ALL_RECIPES if r.name in args.only] if args.only else list(RECIPES)
    try:
        images = ensure_images(
            force=args.force,
            jobs=args.jobs,
            use_tarball_cache=not args.no_tarball_cache,
            recipes=recipes,
        )
    except BuildError as exc:
        print(f"[images] error: {exc}", file=sys.stderr)
        return 1
    for tag, image_id in images.items():
        print(f"{tag} {image_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

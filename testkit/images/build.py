"""Build the stand-in images the integration tests deploy, from Debian packages.

No image registry is reachable from the test machines, so the images the
Pulumi program and its tests deploy are made here: mmdebstrap bootstraps a
minimal Debian root file system holding only the packages an image needs,
and ``docker import`` turns its tarball into an image.

- ``argusai-test/postgres:15``: Debian's PostgreSQL 15 behind an entry point
  that follows the official ``postgres`` image's contract.
- ``argusai-test/backend:latest``: ``backend/app.py``, a stdlib HTTP stand-in
  for ArgusAI's FastAPI backend (PostgreSQL or SQLite).
- ``argusai-test/frontend:latest``: ``frontend/server.js``, a node stand-in
  for the Next.js frontend.
- ``argusai-test/caddy:2``: Debian's Caddy 2 with the official ``caddy``
  image's contract (config file, XDG directories, command, ports).
- ``argusai-test/pebble:2``: Debian's Pebble, Let's Encrypt's ACME test server.

More images are built only on request (``--only NAME``), not by default, from
the unmodified ArgusAI release source, found through the environment variable
``ARGUSAI_SOURCE`` (the release checkout's root):

- ``argusai-test/argusai-backend:c5efc85``, the real backend. Its Python
  packages are pinned in ``argusai/constraints.txt``, downloaded as wheels on
  this machine with its own pip configuration and installed into a virtual
  environment in the image without any index.
- ``argusai-test/argusai-frontend:c5efc85`` (``argusai-frontend``), the real
  Next.js frontend built as the published image is, and
  ``...:c5efc85-same-origin`` (``argusai-frontend-same-origin``), the same
  source built for one origin behind a reverse proxy. Its npm packages are
  pinned by the release's own ``package-lock.json``: this machine's npm fills
  a package cache with them (its npm configuration decides where from), then
  a Debian trixie chroot with Debian's node and npm installs them with
  ``npm ci --offline`` and runs ``next build`` without a network; the image
  gets only the standalone server, its static files and ``public``.

Each image carries the label ``argusai.recipe``: a SHA-256 over its recipe
(packages, build options, stand-in sources; for a release image also its
pins and every file of the release source). An image whose tag already
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
from dataclasses import asdict, dataclass, replace
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


def release_root(source_env: str, marker: str) -> Path:
    """The release checkout named by the environment variable `source_env`, holding `marker` (a relative path).

    Raises BuildError, saying what to set, when the variable is unset or names another directory.
    """
    value = os.environ.get(source_env)
    if not value:
        raise BuildError(
            f"{source_env} is not set: point it at the release checkout's root (the directory holding {marker})"
        )
    root = Path(value)
    if not (root / marker).is_file():
        raise BuildError(f"{source_env}={value} is not the release checkout: {marker} is missing there")
    return root


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
        return release_root(self.source_env, f"{self.subdir}/{self.requirements}")

    def app_dir(self) -> Path:
        """The application's directory in the release checkout."""
        return self.source_root() / self.subdir


@dataclass(frozen=True)
class NextRelease:
    """A Next.js application (``output: 'standalone'``) built from a release checkout outside the repository.

    The build host fills an npm cache from the release's ``package-lock.json``
    (its npm configuration decides where from). A throwaway chroot of the
    recipe's suite with Debian's node and npm then runs ``npm ci --offline``
    and ``next build`` with no network, once per build setting: recipes that
    differ only in ``build_env`` share one chroot, one install and the
    bundler's cache. The image gets the standalone server, ``.next/static``
    and ``public``, as the release's Dockerfile copies them; its hooks reach
    them through the environment variable ``RELEASE_APP_TAR``.
    """

    source_env: str  # environment variable naming the release checkout's root
    subdir: str  # the application's directory in the checkout
    target: str  # where the application goes in the image
    # Build-time environment (NEXT_PUBLIC_* values are baked into the bundle), as (name, value) pairs.
    build_env: tuple[tuple[str, str], ...]
    # A JS module of canned Google Fonts answers (NEXT_FONT_GOOGLE_MOCKED_RESPONSES), relative to this directory.
    fonts_mock: str
    # Paths never copied, besides the release's .dockerignore: glob patterns
    # matched against every path component.
    always_excluded: tuple[str, ...]
    # Own the standalone server and .next (static files too), as upstream (nextjs:nodejs).
    uid: int
    gid: int
    build_command: tuple[str, ...] = ("npm", "run", "build", "--", "--webpack")
    builder_packages: tuple[str, ...] = ("nodejs", "npm")
    lockfile: str = "package-lock.json"  # relative to subdir

    def source_root(self) -> Path:
        """The release checkout, from the environment; BuildError when unusable."""
        return release_root(self.source_env, f"{self.subdir}/{self.lockfile}")

    def app_dir(self) -> Path:
        """The application's directory in the release checkout."""
        return self.source_root() / self.subdir

    def builder(self) -> NextRelease:
        """What a shared build chroot depends on: everything but the build settings."""
        return replace(self, build_env=())


_OPTIONAL_RECIPE_FIELDS = ("next_release", "short_name")


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
    next_release: NextRelease | None = None
    # For two tags of one repository: the name --only knows (default: the repository's last part).
    short_name: str = ""

    @property
    def name(self) -> str:
        """Short name, e.g. ``postgres``, for logs and cache files."""
        return self.short_name or self.tag.split("/")[-1].split(":")[0]

    @property
    def repository(self) -> str:
        """The tag without its version, e.g. ``argusai-test/postgres``."""
        return self.tag.rsplit(":", 1)[0]

    def digest(self) -> str:
        """SHA-256 over the recipe, its stand-in files and, for a release, its pins and source."""
        sha = hashlib.sha256()
        recipe = asdict(self)
        # Fields added after the first recipes count only when set, so that adding them rebuilt nothing.
        for key in _OPTIONAL_RECIPE_FIELDS:
            if not recipe[key]:
                del recipe[key]
        payload = {
            "format": RECIPE_FORMAT,
            "recipe": recipe,
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
        if self.next_release is not None:
            sha.update(b"\0next-build\0" + next_build_key(self).encode())
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

# The first Debian suite whose nodejs (20.19) runs Next.js 16 (it needs >= 20.9; bookworm has 18).
NODE_SUITE = "trixie"
NEXT_USER = "nextjs"
NEXT_GROUP = "nodejs"
NEXT_UID = 1001  # the release's Dockerfile: adduser --system --uid 1001 nextjs, addgroup --gid 1001 nodejs

ARGUSAI_NEXT = NextRelease(
    source_env=ARGUSAI_SOURCE_ENV,
    subdir="frontend",
    target="/app",
    # As published: the Dockerfile's default ARG, baked into the browser bundle and into the
    # /api/v1 rewrite (next.config.ts: BACKEND_URL || NEXT_PUBLIC_API_URL).
    build_env=(("NEXT_PUBLIC_API_URL", "http://localhost:8000"),),
    fonts_mock="argusai/next-font-google-mocks.js",
    always_excluded=("node_modules", ".next"),
    uid=NEXT_UID,
    gid=NEXT_UID,
)

ARGUSAI_FRONTEND = Recipe(
    tag=f"argusai-test/argusai-frontend:{ARGUSAI_RELEASE}",
    suite=NODE_SUITE,
    # The standalone server needs node only (its native modules come with it);
    # the CA bundle, as node:20-alpine has, for any HTTPS the server makes.
    packages=("nodejs", "ca-certificates"),
    next_release=ARGUSAI_NEXT,
    customize_hooks=(
        # No passwd package in the essential set, so the entries are written directly.
        f"echo '{NEXT_USER}:x:{NEXT_UID}:{NEXT_UID}::/home/{NEXT_USER}:/usr/sbin/nologin' >> \"$1/etc/passwd\"",
        f"echo '{NEXT_GROUP}:x:{NEXT_UID}:' >> \"$1/etc/group\"",
        f'install -d -o {NEXT_UID} -g {NEXT_UID} -m 0755 "$1/home/{NEXT_USER}"',
        # /app/public owned by root, the standalone server and .next (static files too) by nextjs, as upstream.
        'tar -C "$1" --numeric-owner --same-owner -xf "$RELEASE_APP_TAR"',
    ),
    changes=(
        f"ENV PATH={DEFAULT_PATH}",
        "ENV NODE_ENV=production",
        "ENV NEXT_TELEMETRY_DISABLED=1",
        "ENV HOSTNAME=0.0.0.0",
        "ENV PORT=3000",
        "WORKDIR /app",
        f"USER {NEXT_USER}",
        # node as PID 1, as upstream: the standalone server stops on SIGTERM itself.
        'CMD ["node", "server.js"]',
        "EXPOSE 3000",
    ),
)
# The same source for one origin behind a reverse proxy: the browser calls relative /api/v1 URLs, and the
# Next server's own /api/v1 rewrite goes to the backend's alias on the stack's network.
ARGUSAI_FRONTEND_SAME_ORIGIN = replace(
    ARGUSAI_FRONTEND,
    tag=f"{ARGUSAI_FRONTEND.tag}-same-origin",
    short_name="argusai-frontend-same-origin",
    next_release=replace(ARGUSAI_NEXT, build_env=(("NEXT_PUBLIC_API_URL", ""), ("BACKEND_URL", "http://backend:8000"))),
)

CADDY = Recipe(
    tag="argusai-test/caddy:2",
    # Debian's caddy 2.6 ships /etc/caddy/Caddyfile and /usr/share/caddy/index.html, the same default
    # site as the official image's. Its maintainer script creates a caddy user with groupadd/useradd
    # (passwd); its systemd units and that user play no part here: the image runs caddy as root, as
    # the official one does. busybox gives the image the wget of caddy:2-alpine.
    packages=("caddy", "passwd", "busybox", "ca-certificates"),
    customize_hooks=(
        'ln -s /bin/busybox "$1/usr/local/bin/wget"',
        'mkdir -p "$1/config/caddy" "$1/data/caddy" "$1/srv"',
    ),
    changes=(
        f"ENV PATH={DEFAULT_PATH}",
        "ENV XDG_CONFIG_HOME=/config",
        "ENV XDG_DATA_HOME=/data",
        'VOLUME ["/config", "/data"]',
        "WORKDIR /srv",
        'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]',
        "EXPOSE 80 443 443/udp 2019",
    ),
)

PEBBLE_CONFIG = "/etc/pebble/pebble-config.json"
PEBBLE = Recipe(
    tag="argusai-test/pebble:2",
    packages=("pebble",),
    files=(StandInFile("pebble/pebble-config.json", PEBBLE_CONFIG),),
    # Pebble serves ACME over HTTPS only, and the package has no certificate for it (upstream's
    # test/certs are not packaged): a self-signed one, made on the build host, for the names a test
    # reaches it by. Tests may mount their own certificate, key and config instead.
    customize_hooks=(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 -subj /CN=pebble"
        ' -addext "subjectAltName=DNS:pebble,DNS:localhost,IP:127.0.0.1,IP:::1"'
        ' -keyout "$1/etc/pebble/key.pem" -out "$1/etc/pebble/cert.pem" 2>/dev/null',
        'chmod 0644 "$1/etc/pebble/key.pem"',
    ),
    changes=(
        f"ENV PATH={DEFAULT_PATH}",
        # No random 0-15 s pause before each validation.
        "ENV PEBBLE_VA_NOSLEEP=1",
        # Arguments given as the command come after the config (a second -config wins: Go's flags).
        f'ENTRYPOINT ["/usr/bin/pebble", "-config", "{PEBBLE_CONFIG}"]',
        "EXPOSE 14000 15000",
    ),
)

RECIPES: tuple[Recipe, ...] = (POSTGRES, BACKEND, FRONTEND, CADDY, PEBBLE)
# Buildable with --only: the release images, which only some tests need.
ALL_RECIPES: tuple[Recipe, ...] = (*RECIPES, ARGUSAI_BACKEND, ARGUSAI_FRONTEND, ARGUSAI_FRONTEND_SAME_ORIGIN)


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
    if suite not in repos and SUITE in repos:
        # Another suite of the same archive (trixie beside bookworm): the mirrors serving this
        # machine's own suite serve it too, under its name (mmdebstrap fails if they do not).
        log(f"no {suite} repository in apt's configuration: using the mirrors of {SUITE} for it")
        for kind in ("", "-updates", "-security"):
            if f"{SUITE}{kind}" in repos:
                repos.setdefault(f"{suite}{kind}", repos[f"{SUITE}{kind}"])
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
    return files_digest(root, sorted(root.rglob("*")))


def files_digest(root: Path, paths: Sequence[Path]) -> str:
    """SHA-256 over PATHS below ROOT, in order: relative path, executable bit, content (or link target)."""
    sha = hashlib.sha256()
    for path in paths:
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


def release_files(release: PythonRelease | NextRelease) -> list[Path]:
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


def _owned(info: tarfile.TarInfo, uid: int, gid: int | None = None) -> tarfile.TarInfo:
    info.uid = uid
    info.gid = uid if gid is None else gid
    info.uname = info.gname = ""
    return info


def _directory_info(name: str, uid: int, gid: int | None = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = int(time.time())
    return _owned(info, uid, gid)


def _add_files(
    tar: tarfile.TarFile,
    root: Path,
    paths: Sequence[Path],
    target: str,
    uid: int,
    made: set[str],
    gid: int | None = None,
) -> None:
    """Add PATHS (below ROOT) to TAR under TARGET, owned by UID (and GID, default UID), with their parent directories.

    Modes become 0755 (executable) or 0644, directories 0755; MADE holds the
    directories already in the tarball and is updated.
    """
    for path in paths:
        rel = path.relative_to(root)
        for parent in reversed(rel.parents[:-1]):
            name = f"{target}/{parent.as_posix()}"
            if name not in made:
                made.add(name)
                tar.addfile(_directory_info(name, uid, gid))
        name = f"{target}/{rel.as_posix()}"
        if path.is_dir() and not path.is_symlink():
            if name not in made:
                made.add(name)
                tar.addfile(_directory_info(name, uid, gid))
            continue
        info = _owned(tar.gettarinfo(path, name), uid, gid)
        info.mode = 0o755 if info.mode & 0o111 else 0o644
        if info.isreg():
            with path.open("rb") as handle:
                tar.addfile(info, handle)
        else:
            tar.addfile(info)


def write_app_tarball(release: PythonRelease, tarball: Path) -> None:
    """TARBALL holds the release files under TARGET (and an empty TARGET/data), owned by UID."""
    target = release.target.strip("/")
    with tarfile.open(tarball, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_directory_info(target, release.uid))
        tar.addfile(_directory_info(f"{target}/data", release.uid))
        _add_files(tar, release.app_dir(), release_files(release), target, release.uid, {target})


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


# npm on a cold machine: some 650 packages (200 MiB) to download and unpack.
NPM_TIMEOUT_SECONDS = 1800
# One step in the build chroot (`npm ci`, one `next build`): measured 30 s and 105-160 s on 2 cores.
NEXT_STEP_TIMEOUT_SECONDS = 1800
# A whole build chroot: bootstrap (60-100 s), install and every build setting of one source.
NEXT_BUILDER_TIMEOUT_SECONDS = 3600
# Only for the throwaway build chroot (not in any image): no fsync for every unpacked file (78 s -> 59 s).
NEXT_BUILDER_DPKG_OPTIONS = ("force-unsafe-io",)
# Where the build chroot has the application, its npm cache and the fonts mock.
NEXT_BUILD_ROOT = "/build"
NEXT_APP_DIR = f"{NEXT_BUILD_ROOT}/app"
NEXT_NPM_CACHE = f"{NEXT_BUILD_ROOT}/npm-cache"
NEXT_FONTS_MOCK = f"{NEXT_BUILD_ROOT}/next-font-google-mocks.js"
# What a build output holds, as the release's Dockerfile copies it: (in the build tree, below the target).
NEXT_OUTPUTS = ((".next/standalone", ""), (".next/static", ".next/static"), ("public", "public"))


def _wait_hook(variable: str) -> str:
    """A hook that waits until the path in $VARIABLE exists, and fails once ``$VARIABLE.failed`` does."""
    return f'until [ -e "${variable}" ]; do [ ! -e "${variable}.failed" ] || exit 1; sleep 1; done'


class _Background:
    """Makes a path in a thread and links it at LINK when done (LINK.failed on failure), for hooks waiting on it.

    So a bootstrap can run while what its hooks need later is still being made.
    """

    def __init__(self, make: Callable[[], Path], link: Path) -> None:
        self.link = link
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(make,), daemon=True)
        self._thread.start()

    def _run(self, make: Callable[[], Path]) -> None:
        try:
            target = make()
            temporary = self.link.with_name(f"{self.link.name}.link")
            temporary.symlink_to(target)
            temporary.replace(self.link)
        except BaseException as exc:  # handed to the thread waiting for the result
            self.error = exc
            self.link.with_name(f"{self.link.name}.failed").touch()

    def raise_if_failed(self) -> None:
        """Re-raise the thread's error if it has failed (without waiting for it)."""
        if not self._thread.is_alive() and self.error is not None:
            raise self.error

    def result(self) -> None:
        """Wait for the thread; re-raise its error."""
        self._thread.join()
        if self.error is not None:
            raise self.error


def next_build_key(recipe: Recipe) -> str:
    """SHA-256 over what RECIPE's Next.js build output depends on.

    The release files the build sees, the build settings, the fonts mock and
    the build chroot's suite and packages; not the runtime image's recipe, so
    a change there reuses the built output.
    """
    release = recipe.next_release
    assert release is not None  # noqa: S101 - only called for Next.js recipes
    sha = hashlib.sha256()
    payload = {"release": asdict(release), "suite": recipe.suite, "apt_options": APT_OPTIONS}
    sha.update(json.dumps(payload, sort_keys=True).encode())
    sha.update(b"\0fonts\0" + (HERE / release.fonts_mock).read_bytes())
    sha.update(b"\0source\0" + files_digest(release.app_dir(), release_files(release)).encode())
    return sha.hexdigest()


def next_output_path(recipe: Recipe) -> Path:
    """The cached tarball of RECIPE's build output (standalone server, static files, public)."""
    return cache_dir() / "next" / f"{recipe.name}-{next_build_key(recipe)[:16]}.tar"


def stage_npm_cache(release: NextRelease) -> Path:
    """Fill (once per lock file) an npm cache with every package RELEASE's lock file pins; return it.

    This machine's npm runs ``npm ci --ignore-scripts`` in a scratch copy of
    ``package.json`` and the lock file: it downloads with its own
    configuration, checks every package against the lock's integrity hashes
    and runs nothing of theirs. Only the cache is kept, under
    :func:`cache_dir`, keyed by a hash of both files.
    """
    app_dir = release.app_dir()
    manifest = (app_dir / "package.json").read_bytes()
    lock = (app_dir / release.lockfile).read_bytes()
    key = hashlib.sha256(manifest + b"\0" + lock).hexdigest()[:16]
    root = cache_dir() / "npm"
    cache = root / f"{release.subdir}-{key}"
    if (cache / "package-lock.json").is_file():
        return cache
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob(f"{release.subdir}-*.part"):
        shutil.rmtree(old)  # a download that failed or was interrupted (the build lock is held)
    partial = root / f"{release.subdir}-{key}.{os.getpid()}.part"
    logfile = cache_dir() / f"{release.subdir}-npm.log"
    log(f"{release.subdir}: filling an npm cache from {release.lockfile}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=root, prefix="project-") as project:
        shutil.copyfile(app_dir / "package.json", Path(project) / "package.json")
        shutil.copyfile(app_dir / release.lockfile, Path(project) / "package-lock.json")
        args = [tool("npm"), "ci", "--cache", str(partial), "--ignore-scripts", "--no-audit", "--no-fund"]
        with logfile.open("wb") as out:
            out.write(f"$ {shlex.join(args)}\n".encode())
            out.flush()
            try:
                proc = subprocess.run(  # noqa: S603 - npm found here, arguments built here
                    args, cwd=project, stdout=out, stderr=out, check=False, timeout=NPM_TIMEOUT_SECONDS
                )
            except subprocess.TimeoutExpired as exc:
                raise BuildError(f"npm ci timed out after {NPM_TIMEOUT_SECONDS}s:\n{_tail(logfile)}") from exc
        if proc.returncode != 0:
            raise BuildError(f"npm ci failed ({proc.returncode}):\n{_tail(logfile)}")
    # The marker of a complete cache is the lock file it was filled from.
    shutil.copyfile(app_dir / release.lockfile, partial / "package-lock.json")
    partial.rename(cache)
    for old in root.glob(f"{release.subdir}-*"):
        if old != cache:
            shutil.rmtree(old)  # the caches of other lock files
    log(f"{release.subdir}: npm cache filled in {time.monotonic() - started:.1f}s")
    return cache


def _in_build_chroot(label: str, env: Sequence[tuple[str, str]], command: Sequence[str]) -> str:
    """A customize hook running COMMAND in the build chroot's application directory, with no network.

    Only ENV (and a fixed PATH and HOME) reaches it: no variable of this
    machine, so no npm configuration either. ``timeout`` stops the whole
    step (its process group) after NEXT_STEP_TIMEOUT_SECONDS.
    """
    variables = [("PATH", DEFAULT_PATH), ("HOME", "/root"), *env]
    script = f"cd {NEXT_APP_DIR} && exec {shlex.join(command)}"
    step = shlex.join(
        [
            tool("timeout"),
            str(NEXT_STEP_TIMEOUT_SECONDS),
            tool("unshare"),
            "--net",
            tool("chroot"),
            "$1",
            "/usr/bin/env",
            "-i",
            *[f"{name}={value}" for name, value in variables],
            "/bin/sh",
            "-c",
            script,
        ]
    ).replace("'$1'", '"$1"')
    # The log shows when each step starts and ends (seconds since the epoch).
    return f'echo "[next-build] {label}: start $(date +%s)" && {step} && echo "[next-build] {label}: end $(date +%s)"'


def next_build_hooks(group: Sequence[Recipe]) -> list[str]:
    """Customize hooks that install GROUP's (one source's) packages once and build each recipe's setting.

    They read the staged source tarball and fonts mock through ``NEXT_STAGE``
    and the npm cache through ``NEXT_NPM_CACHE`` (waiting for it to appear),
    and copy build output I to ``$NEXT_STAGE/out-I``.
    """
    npm_env = [
        ("npm_config_cache", NEXT_NPM_CACHE),
        ("npm_config_offline", "true"),
        ("npm_config_update_notifier", "false"),
        ("npm_config_audit", "false"),
        ("npm_config_fund", "false"),
    ]
    hooks = [
        f'mkdir -p "$1{NEXT_BUILD_ROOT}" && tar -C "$1{NEXT_BUILD_ROOT}" -xf "$NEXT_STAGE/app.tar"',
        # The cache is filled on this machine while the chroot is bootstrapped.
        'echo "[next-build] npm cache: wait $(date +%s)"',
        _wait_hook("NEXT_NPM_CACHE"),
        f'mkdir "$1{NEXT_NPM_CACHE}" && cp -a "$NEXT_NPM_CACHE/." "$1{NEXT_NPM_CACHE}/"',
        f'install -m 0644 "$NEXT_STAGE/fonts.js" "$1{NEXT_FONTS_MOCK}"',
        # The release's Dockerfile runs `npm ci`: the same, from the cache only.
        _in_build_chroot("npm ci", npm_env, ["npm", "ci", "--offline"]),
    ]
    for index, recipe in enumerate(group):
        release = recipe.next_release
        assert release is not None  # noqa: S101 - groups hold Next.js recipes only
        env = [
            *npm_env,
            ("NEXT_TELEMETRY_DISABLED", "1"),
            # next/font/google would fetch Geist from Google at build time.
            ("NEXT_FONT_GOOGLE_MOCKED_RESPONSES", NEXT_FONTS_MOCK),
            *release.build_env,
        ]
        hooks.append(_in_build_chroot(f"build {recipe.name}", env, release.build_command))
        out = f'"$NEXT_STAGE/out-{index}"'
        copies = " && ".join(
            f'cp -a "$1{NEXT_APP_DIR}/{source}" {out}/{source.replace("/", "_")}' for source, _ in NEXT_OUTPUTS
        )
        hooks.append(f"mkdir {out} && {copies}")
    return hooks


def write_next_tarball(release: NextRelease, output: Path, tarball: Path) -> None:
    """TARBALL holds a build OUTPUT under TARGET, laid out and owned as the release's Dockerfile copies it.

    TARGET itself and ``public`` belong to root; the standalone server and
    ``.next`` (with ``.next/static``) to the release's uid.
    """
    target = release.target.strip("/")
    with tarfile.open(tarball, "w", format=tarfile.PAX_FORMAT) as tar:
        made = {target}
        tar.addfile(_directory_info(target, 0))
        for source, dest in NEXT_OUTPUTS:
            root = output / source.replace("/", "_")
            if not root.is_dir():
                raise BuildError(f"the build wrote no {source}")
            uid, gid = (0, 0) if source == "public" else (release.uid, release.gid)
            prefix = f"{target}/{dest}" if dest else target
            if prefix not in made:
                made.add(prefix)
                tar.addfile(_directory_info(prefix, uid, gid))
            _add_files(tar, root, sorted(root.rglob("*")), prefix, uid, made, gid)


# One build chroot at a time: the recipes of one source share it, and the
# second one asking finds its output built.
_next_lock = threading.Lock()
# Outputs built by this process: a forced build makes each only once.
_next_built: set[Path] = set()


def _image_current(recipe: Recipe, use_tarball_cache: bool) -> bool:
    """Whether RECIPE's image is up to date or comes back from a cached root file system."""
    digest = recipe.digest()
    current = image_label(recipe.tag)
    if current and current[1] == digest:
        return True
    return use_tarball_cache and _rootfs_tarball(recipe, digest).exists()


def next_output(
    recipe: Recipe,
    siblings: Sequence[Recipe],
    sources: Callable[[str], Sequence[str]],
    force: bool = False,
    use_tarball_cache: bool = True,
) -> Path:
    """The tarball of RECIPE's Next.js build output, built if need be; return its path.

    A build also makes the outputs of the SIBLINGS (the other images being
    made) that build the same source in the same chroot and need one, so that
    one install and the bundler's cache serve them all.
    """
    release = recipe.next_release
    assert release is not None  # noqa: S101 - only called for Next.js recipes
    with _next_lock:
        tarball = next_output_path(recipe)
        if tarball in _next_built or (tarball.is_file() and not force):
            return tarball
        group = [recipe]
        paths = {tarball}
        for other in siblings:
            if (
                other.next_release is None
                or other.suite != recipe.suite
                or other.next_release.builder() != release.builder()
            ):
                continue
            path = next_output_path(other)
            if path in paths or path in _next_built:
                continue
            if not force and (path.is_file() or _image_current(other, use_tarball_cache)):
                continue
            group.append(other)
            paths.add(path)
        _build_next_outputs(group, sources(recipe.suite))
        return tarball


def _build_next_outputs(group: Sequence[Recipe], sources: Sequence[str]) -> None:
    """Build the outputs of GROUP (recipes of one source) in one build chroot and cache them."""
    release = group[0].next_release
    assert release is not None  # noqa: S101 - groups hold Next.js recipes only
    cache = cache_dir()
    (cache / "next").mkdir(parents=True, exist_ok=True)
    logfile = cache / f"{group[0].name}-next.log"
    names = ", ".join(recipe.name for recipe in group)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=cache, prefix="next-stage-") as stage_dir:
        stage = Path(stage_dir)
        with tarfile.open(stage / "app.tar", "w", format=tarfile.PAX_FORMAT) as tar:
            name = NEXT_APP_DIR.rsplit("/", 1)[-1]
            tar.addfile(_directory_info(name, 0))
            _add_files(tar, release.app_dir(), release_files(release), name, 0, {name})
        shutil.copyfile(HERE / release.fonts_mock, stage / "fonts.js")
        npm_cache = _Background(lambda: stage_npm_cache(release), stage / "npm-cache")
        cmd = [
            tool("mmdebstrap"),
            "--variant=essential",
            "--format=null",
            f"--include={','.join(release.builder_packages)}",
        ]
        cmd += [f"--aptopt={opt}" for opt in APT_OPTIONS]
        cmd += [f"--dpkgopt={opt}" for opt in (*COMMON_DPKG_OPTIONS, *NEXT_BUILDER_DPKG_OPTIONS)]
        cmd += [f"--customize-hook={hook}" for hook in next_build_hooks(group)]
        cmd += [group[0].suite, "/dev/null", *sources]
        # mmdebstrap's null format makes its throwaway chroot (about 2 GiB at its largest) in $TMPDIR or /tmp.
        env = {**os.environ, "NEXT_STAGE": str(stage), "NEXT_NPM_CACHE": str(npm_cache.link)}
        log(f"{names}: building the Next.js release in a {group[0].suite} chroot (offline)")
        with logfile.open("wb") as out:
            out.write(f"$ {shlex.join(cmd)}\n".encode())
            out.flush()
            # Own process group, as for the image builds (mmdebstrap signals its group on failure).
            builder = _spawn(cmd, stdout=out, stderr=out, env=env)
            try:
                returncode = builder.wait(timeout=NEXT_BUILDER_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                builder.terminate()  # SIGTERM: mmdebstrap unmounts and removes its chroot
                _reap(builder)
                raise BuildError(
                    f"{names}: the Next.js build timed out after {NEXT_BUILDER_TIMEOUT_SECONDS}s:\n{_tail(logfile)}"
                ) from None
            _reap(builder)
        if returncode != 0:
            npm_cache.raise_if_failed()  # its own error says more
            raise BuildError(f"{names}: the Next.js build failed ({returncode}):\n{_tail(logfile)}")
        npm_cache.result()
        for index, recipe in enumerate(group):
            assert recipe.next_release is not None  # noqa: S101 - groups hold Next.js recipes only
            tarball = next_output_path(recipe)
            partial = tarball.with_name(f"{tarball.name}.{os.getpid()}.part")
            write_next_tarball(recipe.next_release, stage / f"out-{index}", partial)
            partial.replace(tarball)
            _next_built.add(tarball)
            _remove_stale(tarball.parent, recipe.name, tarball)
    log(f"{names}: Next.js build done in {time.monotonic() - started:.1f}s")


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
    if recipe.next_release is not None:
        cmd.append(f"--customize-hook={_wait_hook('RELEASE_APP_TAR')}")  # the build runs alongside
    cmd += [f"--customize-hook={hook}" for hook in recipe.customize_hooks]
    cmd += [f"--customize-hook={hook}" for hook in COMMON_CLEANUP_HOOKS]
    cmd += [recipe.suite, "-", *sources]
    return cmd


def import_command(recipe: Recipe, digest: str, tagged: bool = True) -> list[str]:
    """`docker import` reading a tarball from stdin, with the image config (and the tag, if TAGGED)."""
    cmd = [tool("docker"), "import"]
    for change in (*recipe.changes, f"LABEL {RECIPE_LABEL}={digest}"):
        cmd += ["--change", change]
    cmd += ["-", recipe.tag] if tagged else ["-"]
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
    timeout: float = IMPORT_TIMEOUT_SECONDS,
) -> None:
    """Stream mmdebstrap's tarball into `docker import` and into the cache.

    ENV is mmdebstrap's environment; both are stopped after TIMEOUT seconds.
    """
    partial = tarball.with_name(f"{tarball.name}.{os.getpid()}.part")
    with logfile.open("wb") as err, tempfile.TemporaryFile() as image_id_file:
        err.write(f"$ {shlex.join(mmdebstrap_command(recipe, sources))}\n".encode())
        err.flush()
        # Own process group: on failure mmdebstrap sends SIGHUP to its whole
        # group, which would otherwise kill this process and its callers.
        bootstrap = _spawn(mmdebstrap_command(recipe, sources), stdout=subprocess.PIPE, stderr=err, env=env)
        # Untagged until the bootstrap has succeeded: `docker import` makes an image of whatever part
        # of the stream it got, which must never carry the tag (and the recipe label) of a good one.
        importer = _spawn(
            import_command(recipe, digest, tagged=False), stdin=subprocess.PIPE, stdout=image_id_file, stderr=err
        )
        # A hung download or import must not hang the test run: stop both after the build timeout (the
        # pipeline then fails below like any other failed build).
        watchdog = threading.Timer(timeout, lambda: (bootstrap.terminate(), importer.terminate()))
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
        image_id_file.seek(0)
        image_id = image_id_file.read().decode().strip()
        err.write(f"imported {image_id or 'nothing'}\n".encode())
    if pump_error is not None or bootstrap_rc != 0 or import_rc != 0 or not image_id:
        partial.unlink(missing_ok=True)
        if image_id:
            _remove_if_dangling(image_id)
        if pump_error is not None:
            step = f"streaming the root file system ({pump_error})"
        else:
            step = "mmdebstrap" if bootstrap_rc != 0 else "docker import"
        raise BuildError(f"{recipe.tag}: {step} failed:\n{_tail(logfile)}")
    run([tool("docker"), "tag", image_id, recipe.tag])
    partial.replace(tarball)


def _remove_if_dangling(image_id: str) -> None:
    """Drop a replaced image unless something still uses it (best effort)."""
    subprocess.run(  # noqa: S603 - fixed docker invocation
        [tool("docker"), "image", "rm", image_id], capture_output=True, check=False, timeout=COMMAND_TIMEOUT_SECONDS
    )


def _rootfs_tarball(recipe: Recipe, digest: str) -> Path:
    """The cached root file system of RECIPE's image with recipe hash DIGEST."""
    return cache_dir() / f"{recipe.name}-{digest[:16]}.tar"


def _remove_stale(directory: Path, name: str, keep: Path) -> None:
    """Remove NAME's cached tarballs in DIRECTORY but KEEP, and partial ones (the build lock is held)."""
    pattern = re.compile(rf"{re.escape(name)}-[0-9a-f]{{16}}\.tar(\.[0-9]+\.part)?")
    for old in directory.iterdir():
        if old != keep and pattern.fullmatch(old.name):
            old.unlink(missing_ok=True)


def build_image(
    recipe: Recipe,
    sources: Callable[[str], Sequence[str]],
    force: bool = False,
    use_tarball_cache: bool = True,
    siblings: Sequence[Recipe] = (),
) -> tuple[str, bool]:
    """Make sure RECIPE's image exists with the current hash.

    Args:
        recipe: the image to make.
        sources: gives the apt sources of a suite; only called when bootstrapping.
        force: rebuild even when the image's recipe hash matches.
        use_tarball_cache: import a cached root file system when there is one.
        siblings: the other images being made (a Next.js build makes theirs too when it can).

    Returns:
        The image id and whether anything was built or imported.
    """
    digest = recipe.digest()
    current = image_label(recipe.tag)
    if current and current[1] == digest and not force:
        return current[0], False

    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    tarball = _rootfs_tarball(recipe, digest)
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
            _bootstrap_and_import(recipe, digest, sources(recipe.suite), tarball, logfile, env)
        if not use_tarball_cache:
            tarball.unlink(missing_ok=True)
    elif recipe.next_release is not None:
        with tempfile.TemporaryDirectory(dir=cache, prefix=f"{recipe.name}-stage-") as stage:
            # The root file system is bootstrapped while the release is built; the hook that
            # unpacks the build waits for it (mmdebstrap_command).
            output = _Background(
                lambda: next_output(recipe, siblings, sources, force, use_tarball_cache), Path(stage) / "app.tar"
            )
            env = {**os.environ, "RELEASE_APP_TAR": str(output.link)}
            log(f"{recipe.tag}: bootstrapping ({', '.join(recipe.packages)}) for the release being built")
            try:
                _bootstrap_and_import(
                    recipe,
                    digest,
                    sources(recipe.suite),
                    tarball,
                    logfile,
                    env,
                    timeout=NEXT_BUILDER_TIMEOUT_SECONDS + IMPORT_TIMEOUT_SECONDS,
                )
            except BuildError:
                output.raise_if_failed()  # the release build's own error says more
                raise
            output.result()
        if not use_tarball_cache:
            tarball.unlink(missing_ok=True)
    else:
        log(f"{recipe.tag}: bootstrapping ({', '.join(recipe.packages)})")
        _bootstrap_and_import(recipe, digest, sources(recipe.suite), tarball, logfile)
        if not use_tarball_cache:
            tarball.unlink(missing_ok=True)
    # Older tarballs of this image are stale now, and so are partial ones left
    # by an interrupted run (the build lock is held: none is being written).
    _remove_stale(cache, recipe.name, tarball)

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
        recipes: which images (default: RECIPES, not the release images).

    Returns:
        Image tag -> image id.

    Raises:
        BuildError: a tool is missing or a build failed.
    """
    needed = ["docker", "mmdebstrap", "apt-get"]
    if any(recipe.next_release is not None for recipe in recipes):
        needed += ["npm", "timeout", "unshare", "chroot"]
    if PEBBLE in recipes:
        needed.append("openssl")  # its hooks make Pebble's own certificate
    for name in needed:
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
    # Read the mirror once per suite, and only when something has to be bootstrapped.
    sources_lock = threading.Lock()
    sources: dict[str, list[str]] = {}

    def get_sources(suite: str) -> list[str]:
        with sources_lock:
            if suite not in sources:
                sources[suite] = debian_sources(suite)
            return sources[suite]

    def one(recipe: Recipe) -> tuple[str, bool]:
        return build_image(recipe, get_sources, force, use_tarball_cache, siblings=recipes)

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
        help="build only this image (repeatable); the release images (argusai-*) are built only when named",
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

"""What an image is made of: the Recipe type, the settings every image shares, and the recipe hash.

The recipes themselves are data in :mod:`testkit.images.recipes`; the builders read them and never
the other way round. A recipe's :meth:`Recipe.digest` decides whether its image is rebuilt, so
anything entering it (field names and values included) is part of every cached image's identity.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from testkit.images.host import BuildError
from testkit.images.release_source import files_digest, release_files, tree_digest

# Stand-in files, pins and mocks named by recipes are relative to this directory.
IMAGES_DIR = Path(__file__).resolve().parent

SUITE = "bookworm"
# Bump when the builders change how images are made in a way the recipes do
# not show, so that every cached image is rebuilt.
RECIPE_FORMAT = 1

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

# The ArgusAI release the argusai-* images are built from, and where its checkout is found.
ARGUSAI_SOURCE_ENV = "ARGUSAI_SOURCE"
ARGUSAI_RELEASE = "c5efc85"  # commit of the release checkout the pins were made for


@dataclass(frozen=True)
class StandInFile:
    """A file of IMAGES_DIR installed into the image."""

    source: str  # relative to IMAGES_DIR
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
    constraints: str  # exact pins, relative to IMAGES_DIR
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
    # A JS module of canned Google Fonts answers (NEXT_FONT_GOOGLE_MOCKED_RESPONSES), relative to IMAGES_DIR.
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
            sha.update((IMAGES_DIR / item.source).read_bytes())
        if self.release is not None:
            sha.update(b"\0constraints\0" + (IMAGES_DIR / self.release.constraints).read_bytes())
            sha.update(b"\0source\0" + tree_digest(self.release.app_dir()).encode())
        if self.next_release is not None:
            sha.update(b"\0next-build\0" + next_build_key(self).encode())
        return sha.hexdigest()


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
    sha.update(b"\0fonts\0" + (IMAGES_DIR / release.fonts_mock).read_bytes())
    app_dir = release.app_dir()
    sha.update(b"\0source\0" + files_digest(app_dir, release_files(app_dir, release.always_excluded)).encode())
    return sha.hexdigest()

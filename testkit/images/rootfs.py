"""Root file systems: mmdebstrap bootstraps one from Debian packages and ``docker import`` makes it an image.

The tarball is streamed into the import and, at the same time, into a cache outside the repository
(:func:`testkit.images.host.cache_dir`), so that an image removed from the engine comes back with a
plain import. Each image carries its recipe hash in the label RECIPE_LABEL.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from testkit.images.background import wait_hook
from testkit.images.host import (
    COMMAND_TIMEOUT_SECONDS,
    BuildError,
    cache_dir,
    log,
    reap,
    run,
    spawn,
    tail,
    tool,
)
from testkit.images.recipe import APT_OPTIONS, COMMON_CLEANUP_HOOKS, COMMON_DPKG_OPTIONS, IMAGES_DIR, SUITE, Recipe

RECIPE_LABEL = "argusai.recipe"
# Copy chunk between mmdebstrap, the tarball cache and `docker import`.
CHUNK_BYTES = 1 << 20
# `docker import` of a root file system of a GiB or more on a cold disk.
IMPORT_TIMEOUT_SECONDS = 1800


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


def rootfs_tarball(recipe: Recipe, digest: str) -> Path:
    """The cached root file system of RECIPE's image with recipe hash DIGEST."""
    return cache_dir() / f"{recipe.name}-{digest[:16]}.tar"


def remove_stale(directory: Path, name: str, keep: Path) -> None:
    """Remove NAME's cached tarballs in DIRECTORY but KEEP, and partial ones (the build lock is held)."""
    pattern = re.compile(rf"{re.escape(name)}-[0-9a-f]{{16}}\.tar(\.[0-9]+\.part)?")
    for old in directory.iterdir():
        if old != keep and pattern.fullmatch(old.name):
            old.unlink(missing_ok=True)


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
            f'--customize-hook=install -D -m {item.mode} {shlex.quote(str(IMAGES_DIR / item.source))} "$1{item.target}"'
        )
    if recipe.next_release is not None:
        cmd.append(f"--customize-hook={wait_hook('RELEASE_APP_TAR')}")  # the build runs alongside
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


def import_tarball(recipe: Recipe, digest: str, tarball: Path, logfile: Path) -> None:
    """Import a cached root file system TARBALL as RECIPE's image, labelled with DIGEST; output goes to LOGFILE."""
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
        raise BuildError(f"{recipe.tag}: docker import failed:\n{tail(logfile)}")


def bootstrap_and_import(
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
        bootstrap = spawn(mmdebstrap_command(recipe, sources), stdout=subprocess.PIPE, stderr=err, env=env)
        # Untagged until the bootstrap has succeeded: `docker import` makes an image of whatever part
        # of the stream it got, which must never carry the tag (and the recipe label) of a good one.
        importer = spawn(
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
        bootstrap_rc = reap(bootstrap)
        import_rc = reap(importer)
        watchdog.cancel()
        image_id_file.seek(0)
        image_id = image_id_file.read().decode().strip()
        err.write(f"imported {image_id or 'nothing'}\n".encode())
    if pump_error is not None or bootstrap_rc != 0 or import_rc != 0 or not image_id:
        partial.unlink(missing_ok=True)
        if image_id:
            remove_if_dangling(image_id)
        if pump_error is not None:
            step = f"streaming the root file system ({pump_error})"
        else:
            step = "mmdebstrap" if bootstrap_rc != 0 else "docker import"
        raise BuildError(f"{recipe.tag}: {step} failed:\n{tail(logfile)}")
    run([tool("docker"), "tag", image_id, recipe.tag])
    partial.replace(tarball)


def remove_if_dangling(image_id: str) -> None:
    """Drop a replaced image unless something still uses it (best effort)."""
    subprocess.run(  # noqa: S603 - fixed docker invocation
        [tool("docker"), "image", "rm", image_id], capture_output=True, check=False, timeout=COMMAND_TIMEOUT_SECONDS
    )

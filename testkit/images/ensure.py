"""Make sure images exist with their recipes' current hash: each built, imported or left as it is.

:func:`ensure_images` is what the tests, the benchmarks and the command line
(:mod:`testkit.images.build`) call; :func:`build_image` picks, for one recipe, between the cached root
file system, the Python-release builder, the Next.js-release builder and a plain bootstrap.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from testkit.images.background import Background
from testkit.images.host import BuildError, cache_dir, log, stop_children, tool
from testkit.images.next_release import NEXT_BUILDER_TIMEOUT_SECONDS, next_output
from testkit.images.python_release import stage_wheels, write_app_tarball
from testkit.images.recipe import Recipe
from testkit.images.recipes import PEBBLE, RECIPES
from testkit.images.rootfs import (
    IMPORT_TIMEOUT_SECONDS,
    bootstrap_and_import,
    debian_sources,
    image_label,
    image_size,
    import_tarball,
    remove_if_dangling,
    remove_stale,
    rootfs_tarball,
)

# Builds run side by side: on 2 cores the downloads and maintainer scripts of
# one overlap the dpkg unpacking of another (measured cold: 105 s one at a
# time, 80 s all three at once).
DEFAULT_JOBS = 3
MEBIBYTE = 1 << 20


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
    tarball = rootfs_tarball(recipe, digest)
    logfile = cache / f"{recipe.name}.log"
    started = time.monotonic()
    if use_tarball_cache and tarball.exists() and not force:
        log(f"{recipe.tag}: importing cached root file system {tarball.name}")
        logfile.write_bytes(b"")
        import_tarball(recipe, digest, tarball, logfile)
    elif recipe.release is not None:
        wheels = stage_wheels(recipe)
        with tempfile.TemporaryDirectory(dir=cache, prefix=f"{recipe.name}-stage-") as stage:
            app_tarball = Path(stage) / "app.tar"
            write_app_tarball(recipe.release, app_tarball)
            env = {**os.environ, "RELEASE_WHEELS": str(wheels), "RELEASE_APP_TAR": str(app_tarball)}
            log(f"{recipe.tag}: bootstrapping ({', '.join(recipe.packages)}) and installing the release")
            bootstrap_and_import(recipe, digest, sources(recipe.suite), tarball, logfile, env)
        if not use_tarball_cache:
            tarball.unlink(missing_ok=True)
    elif recipe.next_release is not None:
        with tempfile.TemporaryDirectory(dir=cache, prefix=f"{recipe.name}-stage-") as stage:
            # The root file system is bootstrapped while the release is built; the hook that
            # unpacks the build waits for it (rootfs.mmdebstrap_command).
            output = Background(
                lambda: next_output(recipe, siblings, sources, force, use_tarball_cache), Path(stage) / "app.tar"
            )
            env = {**os.environ, "RELEASE_APP_TAR": str(output.link)}
            log(f"{recipe.tag}: bootstrapping ({', '.join(recipe.packages)}) for the release being built")
            try:
                bootstrap_and_import(
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
        bootstrap_and_import(recipe, digest, sources(recipe.suite), tarball, logfile)
        if not use_tarball_cache:
            tarball.unlink(missing_ok=True)
    # Older tarballs of this image are stale now, and so are partial ones left
    # by an interrupted run (the build lock is held: none is being written).
    remove_stale(cache, recipe.name, tarball)

    built = image_label(recipe.tag)
    if built is None or built[1] != digest:
        raise BuildError(f"{recipe.tag}: image missing after the build")
    if current and current[0] != built[0]:
        remove_if_dangling(current[0])
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
            stop_children()
            raise

    images: dict[str, str] = {}
    for recipe, (image_id, built) in zip(recipes, results, strict=True):
        images[recipe.tag] = image_id
        if not built:
            size = image_size(image_id) / MEBIBYTE
            log(f"{recipe.tag}: up to date, {size:.0f} MiB, {image_id[:19]}")
    return images

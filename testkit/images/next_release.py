"""The Next.js-release builder: the build output of a Next.js application from a release checkout.

The build host fills an npm cache from the release's lock file (:func:`stage_npm_cache`); a throwaway
chroot then installs from it and runs ``next build`` without a network, once per build setting of one
source (:func:`next_output`). The output is cached as a tarball laid out as the image gets it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from testkit.images.background import Background, wait_hook
from testkit.images.host import BuildError, cache_dir, log, reap, spawn, tail, tool
from testkit.images.recipe import (
    APT_OPTIONS,
    COMMON_DPKG_OPTIONS,
    DEFAULT_PATH,
    IMAGES_DIR,
    NextRelease,
    Recipe,
    next_build_key,
)
from testkit.images.release_source import release_files
from testkit.images.rootfs import image_label, remove_stale, rootfs_tarball
from testkit.images.tarball import add_files, directory_info

# npm on a cold machine: some 650 packages (200 MiB) to download and unpack.
NPM_TIMEOUT_SECONDS = 1800
#: `npm ci` runs per cache fill: npm skips an optional package whose download failed without a word (the
#: platform's SWC compiler among them, which the offline build then tries to download), so a fill that
#: lacks one runs again, fetching only what the cache lacks.
NPM_FILL_ATTEMPTS = 3
#: npm's names for this machine's processor (`cpu` in a lock file).
NPM_CPU = {"x86_64": "x64", "aarch64": "arm64"}
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
        logfile.write_bytes(b"")
        for attempt in range(1, NPM_FILL_ATTEMPTS + 1):
            _npm_ci(args, project, logfile)
            missing = missing_for_this_machine(Path(project), json.loads(lock))
            if not missing:
                break
            log(f"{release.subdir}: npm skipped {', '.join(missing)} (a failed download); attempt {attempt}")
        else:
            raise BuildError(
                f"npm ci left out {', '.join(missing)} {NPM_FILL_ATTEMPTS} times (their downloads failed), which "
                f"the offline build needs on this machine:\n{tail(logfile)}"
            )
    # The marker of a complete cache is the lock file it was filled from.
    shutil.copyfile(app_dir / release.lockfile, partial / "package-lock.json")
    partial.rename(cache)
    for old in root.glob(f"{release.subdir}-*"):
        if old != cache:
            shutil.rmtree(old)  # the caches of other lock files
    log(f"{release.subdir}: npm cache filled in {time.monotonic() - started:.1f}s")
    return cache


def _npm_ci(args: list[str], project: str, logfile: Path) -> None:
    """Run `npm ci` in the scratch project, its output appended to LOGFILE; fail loudly."""
    with logfile.open("ab") as out:
        out.write(f"$ {shlex.join(args)}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(  # noqa: S603 - npm found here, arguments built here
                args, cwd=project, stdout=out, stderr=out, check=False, timeout=NPM_TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"npm ci timed out after {NPM_TIMEOUT_SECONDS}s:\n{tail(logfile)}") from exc
    if proc.returncode != 0:
        raise BuildError(f"npm ci failed ({proc.returncode}):\n{tail(logfile)}")


def missing_for_this_machine(project: Path, lock: dict) -> list[str]:
    """Platform packages of LOCK for this machine (its `os`, `cpu` and C library) that are not in PROJECT.

    Only entries that name both an `os` and a `cpu` (the native binaries: compilers, bindings); an optional
    entry without them is a dependency of one, left out with it on another platform.
    """
    cpu = NPM_CPU.get(platform.machine(), platform.machine())
    libc = "glibc" if platform.libc_ver()[0] == "glibc" else "musl"
    missing = []
    for path, entry in lock.get("packages", {}).items():
        if not entry.get("optional") or "os" not in entry or "cpu" not in entry:
            continue
        if sys.platform not in entry["os"] or cpu not in entry["cpu"] or libc not in entry.get("libc", [libc]):
            continue
        if not (project / path).is_dir():
            missing.append(path.removeprefix("node_modules/"))
    return missing


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
        wait_hook("NEXT_NPM_CACHE"),
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
        tar.addfile(directory_info(target, 0))
        for source, dest in NEXT_OUTPUTS:
            root = output / source.replace("/", "_")
            if not root.is_dir():
                raise BuildError(f"the build wrote no {source}")
            uid, gid = (0, 0) if source == "public" else (release.uid, release.gid)
            prefix = f"{target}/{dest}" if dest else target
            if prefix not in made:
                made.add(prefix)
                tar.addfile(directory_info(prefix, uid, gid))
            add_files(tar, root, sorted(root.rglob("*")), prefix, uid, made, gid)


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
    return use_tarball_cache and rootfs_tarball(recipe, digest).exists()


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
            tar.addfile(directory_info(name, 0))
            app_dir = release.app_dir()
            add_files(tar, app_dir, release_files(app_dir, release.always_excluded), name, 0, {name})
        shutil.copyfile(IMAGES_DIR / release.fonts_mock, stage / "fonts.js")
        npm_cache = Background(lambda: stage_npm_cache(release), stage / "npm-cache")
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
            builder = spawn(cmd, stdout=out, stderr=out, env=env)
            try:
                returncode = builder.wait(timeout=NEXT_BUILDER_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                builder.terminate()  # SIGTERM: mmdebstrap unmounts and removes its chroot
                reap(builder)
                raise BuildError(
                    f"{names}: the Next.js build timed out after {NEXT_BUILDER_TIMEOUT_SECONDS}s:\n{tail(logfile)}"
                ) from None
            reap(builder)
        if returncode != 0:
            npm_cache.raise_if_failed()  # its own error says more
            raise BuildError(f"{names}: the Next.js build failed ({returncode}):\n{tail(logfile)}")
        npm_cache.result()
        for index, recipe in enumerate(group):
            assert recipe.next_release is not None  # noqa: S101 - groups hold Next.js recipes only
            tarball = next_output_path(recipe)
            partial = tarball.with_name(f"{tarball.name}.{os.getpid()}.part")
            write_next_tarball(recipe.next_release, stage / f"out-{index}", partial)
            partial.replace(tarball)
            _next_built.add(tarball)
            remove_stale(tarball.parent, recipe.name, tarball)
    log(f"{names}: Next.js build done in {time.monotonic() - started:.1f}s")

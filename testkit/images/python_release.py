"""The Python-release builder: what an image of a Python application from a release checkout installs.

The build host downloads the pinned wheels once per pin set (:func:`stage_wheels`); the recipe's hooks
install them without an index and unpack the application's files (:func:`write_app_tarball`).
"""

from __future__ import annotations

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
from collections.abc import Sequence
from pathlib import Path

from testkit.images.host import BuildError, cache_dir, log, tail
from testkit.images.recipe import IMAGES_DIR, PythonRelease, Recipe
from testkit.images.release_source import release_files
from testkit.images.tarball import add_files, directory_info

# pip calls on a cold machine: a few hundred MiB of wheels.
PIP_TIMEOUT_SECONDS = 1800


def write_app_tarball(release: PythonRelease, tarball: Path) -> None:
    """TARBALL holds the release files under TARGET (and an empty TARGET/data), owned by UID."""
    target = release.target.strip("/")
    with tarfile.open(tarball, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(directory_info(target, release.uid))
        tar.addfile(directory_info(f"{target}/data", release.uid))
        app_dir = release.app_dir()
        add_files(tar, app_dir, release_files(app_dir, release.always_excluded), target, release.uid, {target})


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


def _pip(pip: Sequence[str], args: Sequence[str], logfile: Path) -> None:
    with logfile.open("ab") as out:
        out.write(f"$ {shlex.join([*pip, *args])}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(  # noqa: S603 - arguments built here
                [*pip, *args], stdout=out, stderr=out, check=False, timeout=PIP_TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"pip {args[0]} timed out after {PIP_TIMEOUT_SECONDS}s:\n{tail(logfile)}") from exc
    if proc.returncode != 0:
        raise BuildError(f"pip {args[0]} failed ({proc.returncode}):\n{tail(logfile)}")


def stage_wheels(recipe: Recipe) -> Path:
    """Download (once per pin set) every wheel RECIPE's release installs; return their directory.

    The directory also holds the ``requirements.txt`` and ``constraints.txt``
    the image installs with. It is cached under :func:`cache_dir`, keyed by a
    hash of the constraints, the requirements and the target platform.
    """
    release = recipe.release
    assert release is not None  # noqa: S101 - only called for release recipes
    constraints = IMAGES_DIR / release.constraints
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

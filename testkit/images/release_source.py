"""A release checkout's files: which of them an image gets, and digests over them."""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from docker.utils.build import exclude_paths

from testkit.images.host import BuildError

DOCKERIGNORE = ".dockerignore"


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


def dockerignore_patterns(app_dir: Path) -> list[str]:
    """The patterns of APP_DIR's .dockerignore, read as the docker SDK's own build does (no blanks, no comments)."""
    path = app_dir / DOCKERIGNORE
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def release_files(app_dir: Path, always_excluded: Sequence[str]) -> list[Path]:
    """The files below APP_DIR an image gets: all but those its .dockerignore or ALWAYS_EXCLUDED drop.

    ALWAYS_EXCLUDED holds glob patterns matched against every path component. The result is sorted
    as paths (component by component), the order the digests and tarballs depend on.
    """
    # What the docker SDK's build would send as the context: directories too, the Dockerfile and the
    # .dockerignore always, and patterns matched without regard to case.
    context = exclude_paths(str(app_dir), dockerignore_patterns(app_dir))
    selected = []
    for path in sorted(app_dir / rel for rel in context):
        if path.is_dir() and not path.is_symlink():
            continue
        rel = path.relative_to(app_dir).as_posix()
        if any(fnmatch.fnmatchcase(part, glob) for part in rel.split("/") for glob in always_excluded):
            continue
        selected.append(path)
    if not selected:
        raise BuildError(f"{app_dir}: no files left to copy into the image")
    return selected

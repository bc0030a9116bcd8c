"""Tarballs of files for mmdebstrap's hooks to unpack into an image, owned by the image's user."""

from __future__ import annotations

import tarfile
import time
from collections.abc import Sequence
from pathlib import Path


def _owned(info: tarfile.TarInfo, uid: int, gid: int | None = None) -> tarfile.TarInfo:
    info.uid = uid
    info.gid = uid if gid is None else gid
    info.uname = info.gname = ""
    return info


def directory_info(name: str, uid: int, gid: int | None = None) -> tarfile.TarInfo:
    """A directory entry NAME, mode 0755, owned by UID (and GID, default UID)."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = int(time.time())
    return _owned(info, uid, gid)


def add_files(
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
                tar.addfile(directory_info(name, uid, gid))
        name = f"{target}/{rel.as_posix()}"
        if path.is_dir() and not path.is_symlink():
            if name not in made:
                made.add(name)
                tar.addfile(directory_info(name, uid, gid))
            continue
        info = _owned(tar.gettarinfo(path, name), uid, gid)
        info.mode = 0o755 if info.mode & 0o111 else 0o644
        if info.isreg():
            with path.open("rb") as handle:
                tar.addfile(info, handle)
        else:
            tar.addfile(info)

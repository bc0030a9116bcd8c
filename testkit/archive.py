"""The one way the test kit hands files to a container it starts itself (`put_archive`): a tar made in memory."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Mapping

PUBLIC_MODE = 0o644


def tar_of(files: Mapping[str, tuple[bytes, int]], uid: int = 0, gid: int = 0) -> bytes:
    """A tar of `files` (path -> (content, mode)), owned by `uid`:`gid`; paths relative to where it is put."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, (content, mode) in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(content), mode
            info.uid, info.gid = uid, gid
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()

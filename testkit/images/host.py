"""The build host: errors, progress lines, its programs and commands, child processes, the cache directory.

Every other module of the image build uses these; this one imports none of them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# A docker or apt query on a cold machine (an engine still starting, apt reading its lists).
COMMAND_TIMEOUT_SECONDS = 300
# Lines of a failed step's log shown in the error.
LOG_TAIL_LINES = 40


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


def tail(path: Path) -> str:
    """The last LOG_TAIL_LINES lines of the log at PATH, for an error message."""
    lines = path.read_text(errors="replace").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


# Children of running builds, stopped when the caller is interrupted (they
# run in their own process groups, so a Ctrl-C does not reach them).
_children: set[subprocess.Popen[bytes]] = set()
_children_lock = threading.Lock()


def spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start ARGS in its own process group and track it until :func:`reap`; KWARGS go to Popen."""
    proc = subprocess.Popen(list(args), process_group=0, **kwargs)  # noqa: S603 - tools and arguments built here
    with _children_lock:
        _children.add(proc)
    return proc


def reap(proc: subprocess.Popen[bytes]) -> int:
    """Wait for a child started by :func:`spawn`, stop tracking it and return its exit status."""
    returncode = proc.wait()
    with _children_lock:
        _children.discard(proc)
    return returncode


def stop_children() -> None:
    """Ask every tracked child to stop."""
    with _children_lock:
        running = list(_children)
    for proc in running:
        # SIGTERM, not SIGKILL: mmdebstrap then unmounts and removes its chroot.
        proc.terminate()

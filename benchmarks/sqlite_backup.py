"""SQLite backup benchmark: the move benchmark's 100,000-event database, copied while a client writes events.

The real release on SQLite holds BENCH_EVENTS events (default 100,000, `benchmarks.move`'s stack); a client
writes events through the release's own API (`POST /api/v1/events`) at 10 a second and as fast as answers
come, while one backup is taken inside the backend image (`benchmarks/sqlite_backup_probe.py`) by each of:

- `one-step`: the project's backup script (`components/scripts/sqlite_backup.py`), the backup API in one step;
- `vacuum-into`: SQLite's `VACUUM INTO`;
- `stepwise`: the backup API 256 pages a step with a 10 ms pause (the project's copy before), given up
  after BOUND_SECONDS.

Prints per writer rate and method: seconds to finish (or that it never did, with its restarts), the longest
write the client waited for and the writes that failed; and the floor: the same database copied as a file,
and by the backup API, with no writer. Needs the release image (`python -m testkit.images.build --only
argusai-backend`, ARGUSAI_SOURCE set). Run: `python -m benchmarks.sqlite_backup`.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import docker

from benchmarks.move import filled_stack
from components.naming import LABEL_ROLE, LABEL_STACK
from testkit.applier import Applier
from testkit.cleanup import remove_stack
from testkit.images.ensure import ensure_images
from testkit.images.recipes import ARGUSAI_BACKEND
from testkit.net import free_port
from testkit.oneoff import run_once
from testkit.release_api import EventWriter, Session

ENGINE_TIMEOUT_SECONDS = 300
BOUND_SECONDS = 120
#: Writes a second: a steady camera load, and as fast as the client gets answers (0).
RATES = (10.0, 0.0)
METHODS = ("one-step", "vacuum-into", "stepwise")
#: Writes before and after the copy, so the window holds writes on both sides.
SETTLE_SECONDS = 2
ROOT = Path(__file__).resolve().parent.parent
PROBE_FILES = {
    "/bench/sqlite_backup_probe.py": ROOT / "benchmarks" / "sqlite_backup_probe.py",
    "/bench/sqlite_backup.py": ROOT / "components" / "scripts" / "sqlite_backup.py",
}


def copy_once(client: docker.DockerClient, stack: str, method: str) -> dict[str, Any]:
    """One copy of the stack's database by `method`, into a scratch volume; the probe's figures."""
    done = run_once(
        client,
        ARGUSAI_BACKEND.tag,
        user="0",
        entrypoint=["python", "/bench/sqlite_backup_probe.py"],
        volumes={
            # Read-write, as the backup container mounts it: a reader may have to roll back a hot journal.
            f"argusai-{stack}-data": {"bind": "/app/data", "mode": "rw"},
            f"argusai-{stack}-scratch": {"bind": "/scratch", "mode": "rw"},
        },
        environment={
            "METHOD": method,
            "SOURCE": "/app/data/app.db",
            "OUT": "/scratch",
            "BOUND_SECONDS": str(BOUND_SECONDS),
        },
        labels={LABEL_STACK: stack, LABEL_ROLE: "oneoff"},
        files={path: source.read_bytes() for path, source in PROBE_FILES.items()},
    )
    if done.code != 0:
        raise RuntimeError(f"{method}: {done.output[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def under_load(client: docker.DockerClient, stack: str, session: Session, rate: float, method: str) -> str:
    """One copy while the client writes at `rate`; one line of figures."""
    writer = EventWriter(session, rate).start()
    time.sleep(SETTLE_SECONDS)
    try:
        figures = copy_once(client, stack, method)
        time.sleep(SETTLE_SECONDS)
    finally:
        writer.stop()
    copy = f"{figures['seconds']:.2f} s" if figures["finished"] else f"never finished ({BOUND_SECONDS} s)"
    label = f"{rate:g}/s" if rate else "as fast as answered"
    return (
        f"writer {label}, {method}: copy {copy}, restarts {figures['restarts']}; "
        f"longest write {writer.longest_latency():.2f} s, {writer.failed} of "
        f"{writer.failed + len(writer.acknowledged)} writes failed"
    )


def main() -> None:
    """Fill, copy with no writer (the floor), then under each writer with each method; print the figures."""
    client = docker.from_env(timeout=ENGINE_TIMEOUT_SECONDS)
    ensure_images(recipes=(ARGUSAI_BACKEND,))
    stack = f"benchbackup{secrets.token_hex(3)}"
    applier = Applier(client)
    try:
        client.volumes.create(f"argusai-{stack}-scratch", labels={LABEL_STACK: stack})
        _, session = filled_stack(client, applier, stack, free_port())
        for method in ("file-copy", "one-step"):
            figures = copy_once(client, stack, method)
            size = figures["bytes"] / 1e6
            print(f"floor, no writer, {method}: {figures['seconds']:.2f} s, {size:.1f} MB", flush=True)
        for rate in RATES:
            for method in METHODS:
                print(under_load(client, stack, session, rate, method), flush=True)
    finally:
        remove_stack(client, stack)


if __name__ == "__main__":
    main()

"""One SQLite backup, measured inside the backend image (its Python, its SQLite), for `benchmarks.sqlite_backup`.

Environment: METHOD (`one-step`: the project's own `sqlite_backup.backup`; `vacuum-into`; `stepwise`, the
backup API 256 pages a step with a 10 ms pause, as the project did before; `file-copy`, a plain copy, valid
only with no writer), SOURCE (the database), OUT (a directory for the copy), BOUND_SECONDS (when a copy
that keeps restarting is given up). Prints one JSON object: method, seconds, finished, restarts, bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import time

# The project's backup script, delivered beside this file.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sqlite_backup  # noqa: E402

STEP_PAGES = 256
STEP_PAUSE_SECONDS = 0.01


class GaveUp(Exception):
    """The stepwise copy ran past the bound."""


def stepwise(source: str, target: str, bound: float) -> int:
    """The backup API in small steps; the number of restarts (a step's `remaining` going up)."""
    restarts, last = 0, None
    deadline = time.monotonic() + bound

    def progress(_status: int, remaining: int, _total: int) -> None:
        nonlocal restarts, last
        if last is not None and remaining > last:
            restarts += 1
        last = remaining
        if time.monotonic() > deadline:
            raise GaveUp

    src, dst = sqlite3.connect(source, timeout=30), sqlite3.connect(target)
    try:
        src.backup(dst, pages=STEP_PAGES, progress=progress, sleep=STEP_PAUSE_SECONDS)
    finally:
        dst.close()
        src.close()
    return restarts


def main() -> None:
    """Take one copy the way METHOD says; print the figures."""
    method, source, out = os.environ["METHOD"], os.environ["SOURCE"], os.environ["OUT"]
    bound = float(os.environ.get("BOUND_SECONDS", "120"))
    target = os.path.join(out, f"{method}.sqlite3")
    if os.path.exists(target):
        os.remove(target)  # an earlier run's copy (VACUUM INTO refuses to overwrite)
    restarts, finished = 0, True
    began = time.monotonic()
    if method == "one-step":
        target = sqlite_backup.backup(source, out, keep=None, prefix="bench") or ""
    elif method == "vacuum-into":
        db = sqlite3.connect(source, timeout=30)
        db.execute("VACUUM INTO ?", (target,))
        db.close()
    elif method == "stepwise":
        try:
            restarts = stepwise(source, target, bound)
        except GaveUp:
            finished = False
    elif method == "file-copy":
        shutil.copyfile(source, target)
    else:
        raise SystemExit(f"unknown METHOD {method}")
    seconds = time.monotonic() - began
    size = os.path.getsize(target) if finished and os.path.exists(target) else 0
    print(json.dumps({"method": method, "seconds": seconds, "finished": finished, "restarts": restarts, "bytes": size}))


if __name__ == "__main__":
    main()

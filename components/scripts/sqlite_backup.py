"""Backup loop for SQLite, run by `python -c` in the backend image.

Takes an online, consistent copy with SQLite's backup API (never a file copy of a live database),
copying a few pages at a time and sleeping between steps so the backend's writers are never blocked
for long. Each copy is written under a hidden temporary name and renamed when complete. A backup is
taken at start and then every BACKUP_INTERVAL_HOURS; the newest BACKUP_KEEP are kept.
"""

from __future__ import annotations

import datetime
import glob
import os
import signal
import sqlite3
import sys
import time

PAGES_PER_STEP = 256
STEP_PAUSE_SECONDS = 0.01
SECONDS_PER_HOUR = 3600


def backup(source: str, directory: str, keep: int) -> str | None:
    """Copy `source` into `directory`, prune old copies, and return the new file's path."""
    if not os.path.exists(source):
        print(f"backup: {source} does not exist yet; skipped", flush=True)
        return None
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    final = os.path.join(directory, f"argusai-{stamp}.sqlite3")
    tmp = os.path.join(directory, f".argusai-{stamp}.sqlite3.partial")
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(tmp)
    try:
        src.backup(dst, pages=PAGES_PER_STEP, sleep=STEP_PAUSE_SECONDS)
    finally:
        dst.close()
        src.close()
    os.replace(tmp, final)
    for old in sorted(glob.glob(os.path.join(directory, "argusai-*.sqlite3")), reverse=True)[keep:]:
        os.remove(old)
    print(f"backup: wrote {os.path.basename(final)}", flush=True)
    return final


def main() -> None:
    """Run the loop until stopped."""
    # PID 1 ignores SIGTERM unless a handler is installed; stop promptly on `docker stop`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    source = os.environ.get("BACKUP_SOURCE", "/app/data/app.db")
    directory = os.environ.get("BACKUP_DIR", "/backups")
    keep = int(os.environ["BACKUP_KEEP"])
    interval = int(os.environ["BACKUP_INTERVAL_HOURS"]) * SECONDS_PER_HOUR
    for stale in glob.glob(os.path.join(directory, ".argusai-*.partial")):
        os.remove(stale)
    while True:
        try:
            backup(source, directory, keep)
        except sqlite3.Error as exc:
            print(f"backup: failed: {exc}", file=sys.stderr, flush=True)
        time.sleep(interval)


if __name__ == "__main__":
    main()

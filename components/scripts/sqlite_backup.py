"""Backup loop for SQLite, run as `python -m sqlite_backup` in the backend image (components/scripts).

Takes an online, consistent copy with SQLite's backup API (never a file copy of a live database) in ONE
step: one read transaction copies every page. A copy in small steps restarts from the first page
whenever another connection writes between two steps, so a steady writer (the backend storing events)
keeps it restarting forever; one step cannot restart. The price is that the backend's writes wait for
the length of one copy (the release's rollback journal lets no write commit while a reader holds the
file; README, Backups, gives the figures). A copy that cannot start, because writers never leave
a moment free, gives up after LOCK_WAIT_SECONDS and fails loudly. Each copy is written under a hidden
temporary name and renamed when complete. A backup is
taken whenever the newest complete one is older than BACKUP_INTERVAL_HOURS (so a restart, or a redeploy
after data loss, does not push good backups out with a copy of an empty database), and at once on
SIGHUP (`docker kill --signal HUP <container>`); the newest BACKUP_KEEP are kept.

With BACKUP_ONCE=1 it takes one backup named BACKUP_PREFIX-<UTC time>.sqlite3 (e.g. `pre-upgrade`),
prunes nothing and exits: 0 when written (or when there is no database yet), 1 when the copy failed.

The loop's outcome, for the container's healthcheck and a monitor, goes to BACKUP_STATUS_DIR (outside
the backups volume, which may be the thing that is full): `succeeded` (the UTC time and the file) after
each backup, `failed` (the UTC time and the cause) after a failed one, removed by the next success.
"""

from __future__ import annotations

import datetime
import glob
import os
import signal
import sqlite3
import sys
import time

# Every page in one step: see the module docstring.
ALL_PAGES = -1
# How long a backup waits for the lock it reads under before it fails (the backend's own writers wait 5 s).
LOCK_WAIT_SECONDS = 600
# While the lock is taken, the source's busy handler retries for this long before the deadline is checked.
BUSY_TIMEOUT_SECONDS = 10
BUSY_PAUSE_SECONDS = 0.05
# sqlite3.SQLITE_BUSY and SQLITE_LOCKED (named in the module only from Python 3.11).
_LOCK_STATUSES = (5, 6)
SECONDS_PER_HOUR = 3600
CHECK_SECONDS = 60
NAME_RETRY_SECONDS = 0.1
PREFIX = "argusai"


def _stamp() -> str:
    # timezone.utc, not datetime.UTC: the backend image may run a Python older than 3.11.
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")  # noqa: UP017


def _pattern(prefix: str) -> str:
    return f"{prefix}-*.sqlite3"


def is_due(directory: str, interval_seconds: float, now: float | None = None) -> bool:
    """Whether no complete backup in `directory` is younger than the interval."""
    now = time.time() if now is None else now
    ages = [now - os.path.getmtime(path) for path in glob.glob(os.path.join(directory, _pattern(PREFIX)))]
    return not ages or min(ages) >= interval_seconds


class LockWaitExceeded(sqlite3.OperationalError):
    """The source stayed locked by writers for longer than the backup waits."""


def backup(
    source: str,
    directory: str,
    keep: int | None,
    prefix: str = PREFIX,
    lock_wait_seconds: float = LOCK_WAIT_SECONDS,
) -> str | None:
    """Copy `source` into `directory`, keep the newest `keep` (None: prune nothing); return the new path.

    Raises sqlite3.Error when the copy fails, LockWaitExceeded when the source stayed locked for
    `lock_wait_seconds`; nothing half-written is left behind either way.
    """
    if not os.path.exists(source):
        print(f"backup: {source} does not exist yet; skipped", flush=True)
        return None
    # One-second names: never reuse the newest backup's name.
    while os.path.exists(os.path.join(directory, f"{prefix}-{_stamp()}.sqlite3")):
        time.sleep(NAME_RETRY_SECONDS)
    stamp = _stamp()
    final = os.path.join(directory, f"{prefix}-{stamp}.sqlite3")
    tmp = os.path.join(directory, f".{prefix}-{stamp}.sqlite3.partial")
    deadline = time.monotonic() + lock_wait_seconds

    def give_up_when_late(status: int, _remaining: int, _total: int) -> None:
        # Called after every step; a step that could not take the lock returns one of _LOCK_STATUSES.
        if status in _LOCK_STATUSES and time.monotonic() > deadline:
            raise LockWaitExceeded(f"{source} stayed locked by writers for {lock_wait_seconds:g} s")

    src = sqlite3.connect(source, timeout=min(BUSY_TIMEOUT_SECONDS, lock_wait_seconds))
    dst = sqlite3.connect(tmp)
    try:
        src.backup(dst, pages=ALL_PAGES, progress=give_up_when_late, sleep=BUSY_PAUSE_SECONDS)
    except sqlite3.Error:
        dst.close()
        if os.path.exists(tmp):
            os.remove(tmp)  # nothing half-written stays behind
        raise
    finally:
        dst.close()
        src.close()
    os.replace(tmp, final)
    if keep is not None:
        for old in sorted(glob.glob(os.path.join(directory, _pattern(prefix))), reverse=True)[keep:]:
            os.remove(old)
    return final


def report(status_dir: str | None, outcome: str, text: str) -> None:
    """Record `succeeded` or `failed` (with `text`) in `status_dir`; a success clears the last failure."""
    if not status_dir:
        return
    os.makedirs(status_dir, exist_ok=True)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017
    tmp = os.path.join(status_dir, f".{outcome}")
    with open(tmp, "w") as out:
        out.write(f"{when} {text}\n")
    os.replace(tmp, os.path.join(status_dir, outcome))
    if outcome == "succeeded" and os.path.exists(os.path.join(status_dir, "failed")):
        os.remove(os.path.join(status_dir, "failed"))


def attempt(source: str, directory: str, keep: int, status_dir: str | None) -> None:
    """One scheduled backup: its outcome printed (the cause, on failure) and reported; never raises."""
    try:
        written = backup(source, directory, keep)
    except (sqlite3.Error, OSError) as exc:  # a full disk is either, depending on where it strikes
        # Reported before it is logged: whoever reads the log line finds the status already written.
        report(status_dir, "failed", f"{type(exc).__name__}: {exc}")
        print(f"backup: failed: {exc}", file=sys.stderr, flush=True)
        return
    if written is not None:
        report(status_dir, "succeeded", os.path.basename(written))
        print(f"backup: wrote {os.path.basename(written)}", flush=True)


def main() -> None:
    """Run the loop until stopped."""
    # PID 1 ignores SIGTERM unless a handler is installed; stop promptly on `docker stop`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # SIGHUP is blocked and waited for, so "back up now" wakes the loop at once.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    source = os.environ.get("BACKUP_SOURCE", "/app/data/app.db")
    directory = os.environ.get("BACKUP_DIR", "/backups")
    if os.environ.get("BACKUP_ONCE") == "1":
        try:
            written = backup(source, directory, None, os.environ.get("BACKUP_PREFIX", PREFIX))
        except sqlite3.Error as exc:
            print(f"backup: failed: {exc}", file=sys.stderr, flush=True)
            sys.exit(1)
        if written is not None:
            print(f"backup: wrote {os.path.basename(written)}", flush=True)
        return
    keep = int(os.environ["BACKUP_KEEP"])
    status_dir = os.environ.get("BACKUP_STATUS_DIR")
    interval = int(os.environ["BACKUP_INTERVAL_HOURS"]) * SECONDS_PER_HOUR
    for stale in glob.glob(os.path.join(directory, f".{PREFIX}-*.partial")):
        os.remove(stale)
    if not is_due(directory, interval):
        print("backup: a backup from the last interval exists; next one when it is due", flush=True)
    requested = False
    while True:
        if requested or is_due(directory, interval):
            attempt(source, directory, keep, status_dir)
        requested = signal.sigtimedwait({signal.SIGHUP}, CHECK_SECONDS) is not None


if __name__ == "__main__":
    main()

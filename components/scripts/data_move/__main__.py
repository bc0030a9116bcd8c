"""Entry point (`python -m data_move`): the environment, the sources opened and locked, the hold, the exit status.

`begin` runs the move up to the point where it is done and returns what ends it (`release_steps` runs the
release's later steps in between, in the same process, with the SQLite source still locked).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from .common import ALEMBIC_INI, EXIT_FAILED, EXIT_OK, EXIT_REFUSED, MoveFailed, MoveRefused, db_error_text, touch
from .copy import Context, copy_into_target
from .plan import build_plans
from .read import PostgresSource, SqliteSource
from .report import Report, masked

REQUIRED_ENV = ("MOVE_SOURCE_URL", "DATABASE_URL", "ENCRYPTION_KEY", "JWT_SECRET_KEY")
HOLD_SLEEP_SECONDS = 3600
# MOVE_RELEASE_AFTER: how often, and how patiently, the backend's /health is asked while the lock is held.
HOLD_PROBE_SECONDS = 0.5
HOLD_PROBE_TIMEOUT_SECONDS = 2
HTTP_OK = 200


def parse_url(variable: str, url: str) -> Any:
    """A SQLAlchemy URL; an unreadable one is refused without showing it (it may hold a password)."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise MoveFailed(f"{variable} is not a database URL (not shown: it may hold a password)") from None


def check_environment() -> None:
    """Fail early, naming (never showing) what is missing; make the release importable."""
    missing = [name for name in REQUIRED_ENV if not os.environ.get(name, "").strip()]
    if missing:
        raise MoveFailed(
            f"missing environment variable(s) {', '.join(missing)}: MOVE_SOURCE_URL and DATABASE_URL name the "
            "databases, and the release's settings require ENCRYPTION_KEY and JWT_SECRET_KEY"
        )
    if os.environ.get("MOVE_HOLD") == "1" and not os.environ.get("STEP_DONE"):
        raise MoveFailed("MOVE_HOLD=1 needs STEP_DONE: the file to touch once the move is done and the lock held")
    if not os.path.isfile(ALEMBIC_INI):
        raise MoveFailed(f"no {ALEMBIC_INI} in the working directory: run the move with cwd /app in the image")
    # `python -m` and `-c` put the working directory first on sys.path; `python /dev/stdin` puts /dev there.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def move(report: Report) -> Context | None:
    """Do the move: its context, the SQLite source still locked, once copied or found moved already.

    None when there was nothing to move. Refusals and failures raise, with the source released.
    """
    check_environment()
    source_url = os.environ["MOVE_SOURCE_URL"].strip()
    target_url = os.environ["DATABASE_URL"].strip()
    source_parsed = parse_url("MOVE_SOURCE_URL", source_url)
    target_parsed = parse_url("DATABASE_URL", target_url)
    report.mask(source_parsed.password, target_parsed.password)
    source_dialect = source_parsed.get_backend_name()
    target_dialect = target_parsed.get_backend_name()
    for what, dialect in (("source", source_dialect), ("target", target_dialect)):
        if dialect not in ("sqlite", "postgresql"):
            raise MoveFailed(f"unsupported {what} dialect {dialect!r} (the release supports sqlite and postgresql)")
    kinds = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    source_kind, target_kind = kinds[source_dialect], kinds[target_dialect]

    import app.models  # noqa: F401 - registers every model on Base.metadata, as alembic/env.py does
    from app.core.database import Base

    metadata = Base.metadata

    # 1. No SQLite file: nothing to move (a fresh install).
    if source_dialect == "sqlite":
        path = source_parsed.database or ""
        if not path or path == ":memory:":
            raise MoveFailed("MOVE_SOURCE_URL names no SQLite file")
        if not os.path.isfile(path):
            report.line(f"no SQLite database at {path}; nothing to move")
            return None
        if target_dialect == "sqlite" and os.path.realpath(path) == os.path.realpath(target_parsed.database or ""):
            raise MoveRefused("the source and the target are the same SQLite file")
        source: Any = SqliteSource(path)
    else:
        source = PostgresSource(source_url)
    if target_dialect == "sqlite" and not os.path.isfile(target_parsed.database or ""):
        raise MoveRefused(
            f"the target SQLite database {target_parsed.database} does not exist: run the schema gate on it first"
        )

    ctx = Context(
        report=report,
        source=source,
        source_url=source_url,
        target_url=target_url,
        hold=os.environ.get("MOVE_HOLD") == "1",
        step_done=os.environ.get("STEP_DONE", ""),
        backup_dir=os.environ.get("MOVE_BACKUP_DIR", "").strip(),
    )
    try:
        # 2. Lock (SQLite) or snapshot (PostgreSQL).
        source.open()
        if isinstance(source, SqliteSource):
            report.line(
                f"write lock taken on {source.path} (journal mode {source.journal_mode}): writes by other "
                "connections now wait and fail with 'database is locked'"
            )
        source_columns = source.columns()
        counts = {t.name: source.count(t.name) for t in metadata.sorted_tables if t.name in source_columns}
        total = sum(counts.values())
        # 3. No row anywhere: nothing to move.
        if total == 0:
            report.line(f"the source {masked(source_url)} holds no row in any model table; nothing to move")
            source.release()
            return None
        plans = build_plans(metadata, source_columns, report)
        revisions = source.revisions(source_columns)
        copy_into_target(ctx, metadata, plans, counts, revisions, source_kind, target_kind)
    except BaseException:
        source.release()
        raise
    return ctx


def finish(ctx: Context | None) -> None:
    """Touch STEP_DONE; with MOVE_HOLD keep the SQLite lock until killed, else release it."""
    step_done = os.environ.get("STEP_DONE", "")
    if step_done:
        touch(step_done)
    if ctx is None:
        return
    if ctx.hold and isinstance(ctx.source, SqliteSource) and ctx.source.connection is not None:
        # `docker stop` sends SIGTERM: end at once (the lock goes with the process).
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(EXIT_OK))
        release_after = os.environ.get("MOVE_RELEASE_AFTER", "")
        if release_after:
            wait_for_replacement(release_after)
            ctx.source.release()
            print(
                "data-move: the backend was replaced (its /health failed, then answered again): SQLite write lock "
                "released",
                flush=True,
            )
        while True:
            time.sleep(HOLD_SLEEP_SECONDS)
    ctx.source.release()


def wait_for_replacement(url: str) -> None:
    """Return once `url` has failed at least once and then answered 200: the old backend is gone for good.

    The lock must outlive the old backend (its writes would land in SQLite after the copy), and need not
    outlive its replacement: once the new backend answers, nothing writes the SQLite file any more, and
    a stack that goes back to SQLite later must find it unlocked.
    """
    import urllib.request

    gone = False
    while True:
        try:
            with urllib.request.urlopen(url, timeout=HOLD_PROBE_TIMEOUT_SECONDS) as response:  # noqa: S310
                answered = response.status == HTTP_OK
        except OSError:
            answered = False
        if answered and gone:
            return
        gone = gone or not answered
        time.sleep(HOLD_PROBE_SECONDS)


def begin() -> tuple[int, Callable[[], None]]:
    """Run the move, print the report and write MOVE_REPORT: the exit status, and what ends the move.

    Ending it (after status 0 only) touches STEP_DONE and, with MOVE_HOLD, holds the SQLite write lock until
    the old backend is replaced; until then the source stays locked.
    """
    report = Report(os.environ.get("MOVE_REPORT", "").strip())
    ctx: Context | None = None
    try:
        ctx = move(report)
        status = EXIT_OK
    except MoveRefused as exc:
        report.line(f"FAILED: refused: {exc}", error=True)
        status = EXIT_REFUSED
    except MoveFailed as exc:
        report.line(f"FAILED: {exc}", error=True)
        status = EXIT_FAILED
    except Exception as exc:  # any other failure: reported (masked), exit 1
        report.line(f"FAILED: {type(exc).__name__}: {db_error_text(exc)}", error=True)
        status = EXIT_FAILED
    report.write()
    return status, lambda: finish(ctx)


def main() -> int:
    """Run the move and end it; return the exit status."""
    status, end = begin()
    if status == EXIT_OK:
        end()
    return status


if __name__ == "__main__":
    sys.exit(main())

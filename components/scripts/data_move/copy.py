"""Into the target, in one transaction: refusals, the backup, COPY or INSERT batches, sequences, the marker."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from .common import BATCH_ROWS, EXIT_OK, MoveFailed, MoveRefused, db_error_text, utc_now
from .plan import TablePlan, convert_rows, fingerprint, hash_rows, hash_table, parents_first
from .read import SqliteSource
from .report import Report, format_counts, how_to_proceed, masked
from .target import marker_table, read_marker, seeded_only, target_counts, target_revisions

#: Columns whose NUL-removed or Latin-1-read rows get a line of examples, at most (the table lines count them all).
MAX_EXAMPLE_LINES = 100
#: A key for pg_advisory_xact_lock: two moves into one PostgreSQL database run one after the other.
ADVISORY_LOCK_KEY = 0x41524755  # "ARGU"


@dataclass
class Context:
    """What the move is working on."""

    report: Report
    source: Any
    source_url: str
    target_url: str
    hold: bool
    step_done: str
    backup_dir: str


def target_engine(url: str) -> Any:
    """The target's engine; SQLite gets real transactions (BEGIN IMMEDIATE, DDL included)."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(url, poolclass=NullPool, hide_parameters=True)
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
            # pysqlite would start transactions itself, and only before DML; SQLAlchemy's BEGIN does it.
            dbapi_connection.isolation_level = None

        @sa.event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def copy_into_target(
    ctx: Context,
    metadata: Any,
    plans: list[TablePlan],
    counts: dict[str, int],
    revisions: list[str],
    source_kind: str,
    target_kind: str,
) -> int:
    """Steps 4-10, all in the target's one transaction."""
    import sqlalchemy as sa

    report, source = ctx.report, ctx.source
    total = sum(counts.values())
    marker = marker_table()
    engine = target_engine(ctx.target_url)
    try:
        with engine.connect() as connection, connection.begin():
            if connection.dialect.name == "postgresql":
                # Two moves into one database: the second waits, then finds the first one's marker.
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
            # 4. Marker, or data already there.
            previous = read_marker(connection, marker)
            if previous is not None:
                current = fingerprint(source, plans, revisions)
                moved = sum(json.loads(previous.row_counts).values())
                if current == previous.fingerprint:
                    report_pause(ctx, "now")
                    report_hold(ctx)
                    report.line(f"already moved at {previous.moved_at.isoformat()} ({moved} rows); nothing copied")
                    return EXIT_OK
                raise MoveRefused(
                    f"the {source_kind} data changed after it was moved at {previous.moved_at.isoformat()} "
                    f"({moved} rows from {previous.source}): {target_kind} holds the data moved then plus anything "
                    f"written there since; the move never overwrites or merges; nothing was changed. "
                    + how_to_proceed(source_kind, target_kind)
                )
            held = {name: count for name, count in target_counts(connection, metadata).items() if count}
            seeded: dict[str, int] = {}
            if held:
                # Only a gated SQLite file can hold seeded rows: the gate runs the chain there (on
                # PostgreSQL it uses create_all).
                seeded = seeded_only(connection, metadata, held, report) if connection.dialect.name == "sqlite" else {}
                if not seeded:
                    raise MoveRefused(
                        f"{target_kind} already holds data ({format_counts(held)}); the move never overwrites or "
                        f"merges; nothing was changed. " + how_to_proceed(source_kind, target_kind)
                    )
            # 5. Same Alembic revisions on both sides.
            target_revs = target_revisions(connection)
            if revisions != target_revs:
                raise MoveRefused(
                    f"the source is at revision {', '.join(revisions) or 'none (no alembic_version)'} but the target "
                    f"at {', '.join(target_revs) or 'none (no alembic_version)'}; bring the source to the same "
                    "revision first (e.g. run the schema gate of this release on the SQLite database, then switch); "
                    "nothing was changed"
                )
            # 6. Backup of the SQLite source, before anything is copied.
            if ctx.backup_dir and isinstance(source, SqliteSource):
                path, size = source.backup(ctx.backup_dir)
                report.line(f"backup of the source written: {path} ({size} bytes)")
            # 7. Copy.
            copy_started = time.monotonic()
            for name in seeded:
                connection.execute(metadata.tables[name].delete())
            if seeded:
                report.line(
                    f"the target held only rows its migration chain seeds ({format_counts(seeded)}); "
                    "replaced by the source's"
                )
            marker.create(connection, checkfirst=True)
            hasher = hashlib.sha256()
            for plan in plans:
                copy_table(connection, source, plan, hasher, target_kind)
            hasher.update(f"\nrevision {','.join(revisions)}\n".encode())
            # 8. Sequences past the highest id copied.
            sequences = set_sequences(connection, metadata) if connection.dialect.name == "postgresql" else []
            # 9. Counts inside the transaction, then the marker.
            after = target_counts(connection, metadata)
            differ = {name: (counts[name], after[name]) for name in counts if after[name] != counts[name]}
            if differ:
                raise MoveFailed(
                    "row counts differ after the copy (table: source/target): "
                    + ", ".join(f"{name}: {a}/{b}" for name, (a, b) in differ.items())
                    + "; rolled back, nothing was changed"
                )
            connection.execute(
                marker.insert(),
                {
                    "source": masked(ctx.source_url),
                    "fingerprint": hasher.hexdigest(),
                    "revision": ",".join(revisions),
                    "row_counts": json.dumps(counts, sort_keys=True),
                    "moved_at": utc_now(),
                },
            )
        copy_seconds = time.monotonic() - copy_started
    except sa.exc.DBAPIError as exc:
        raise MoveFailed(f"{target_kind} error: {db_error_text(exc)}; rolled back, nothing was changed") from exc
    finally:
        engine.dispose()

    # 10. Report.
    for plan in plans:
        kinds = plan.stats.kinds()
        conversions = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
        report.line(f"table {plan.table.name}: {plan.copied} rows" + (f" ({conversions})" if conversions else ""))
    notable = [(plan, key, examples) for plan in plans for key, examples in sorted(plan.stats.examples.items())]
    for plan, (column, kind), examples in notable[:MAX_EXAMPLE_LINES]:
        count = plan.stats.count(column, kind)
        why = " (PostgreSQL text cannot hold NUL)" if kind == "NUL removed" else " (not valid UTF-8)"
        report.line(f"{kind}{why}: {plan.table.name}.{column} in {count} row(s), e.g. {'; '.join(examples)}")
    if len(notable) > MAX_EXAMPLE_LINES:
        report.line(f"... and {len(notable) - MAX_EXAMPLE_LINES} more column(s) like these (see the table lines)")
    if sequences:
        report.line(f"sequences set: {', '.join(sequences)}")
    rate = total / copy_seconds if copy_seconds > 0 else float(total)
    report.line(f"copied {total} rows in {copy_seconds:.2f} s ({rate:.0f} rows/s)")
    report_pause(ctx, "the end of the copy")
    report_hold(ctx)
    report.line(
        f"moved {total} rows in {copy_seconds:.2f} s from {masked(ctx.source_url)} to {masked(ctx.target_url)} "
        f"(rev {','.join(revisions)})"
    )
    return EXIT_OK


def report_pause(ctx: Context, until: str) -> None:
    """How long the SQLite source's writers have been locked out."""
    source = ctx.source
    if isinstance(source, SqliteSource) and source.locked_at:
        paused = time.monotonic() - source.locked_at
        ctx.report.line(f"writes to {source.path} paused for {paused:.2f} s (from taking the lock to {until})")


def report_hold(ctx: Context) -> None:
    """Say that the lock stays (MOVE_HOLD=1 with a SQLite source)."""
    if ctx.hold and isinstance(ctx.source, SqliteSource):
        release_after = os.environ.get("MOVE_RELEASE_AFTER", "")
        until = f"the backend at {release_after} has been replaced" if release_after else "this process is stopped"
        ctx.report.line(
            f"MOVE_HOLD=1: the write lock on {ctx.source.path} stays held until {until} ({ctx.step_done} touched)"
        )


def copy_table(connection: Any, source: Any, plan: TablePlan, hasher: Any, target_kind: str) -> None:
    """Copy one table's rows, in batches (all at once for a table referencing itself)."""
    hash_table(hasher, plan)
    if plan.self_refs:
        rows = [row for batch in source.batches(plan.table, plan.columns) for row in batch]
        hash_rows(hasher, rows)
        ordered = parents_first(plan, convert_rows(plan, rows))
        for start in range(0, len(ordered), BATCH_ROWS):
            insert_batch(connection, plan, ordered[start : start + BATCH_ROWS], target_kind)
        return
    for rows in source.batches(plan.table, plan.columns):
        hash_rows(hasher, rows)
        insert_batch(connection, plan, convert_rows(plan, rows), target_kind)


def insert_batch(connection: Any, plan: TablePlan, rows: list[dict[str, Any]], target_kind: str) -> None:
    """COPY (or INSERT) one batch in a savepoint; on failure find the row the database rejects and name it."""
    import sqlalchemy as sa

    if not rows:
        return
    if copy_batch(connection, plan, rows):
        plan.copied += len(rows)
        return
    try:
        with connection.begin_nested():
            connection.execute(plan.insert, rows)
    except sa.exc.DBAPIError as exc:
        offender, error = None, exc
        for row in rows:
            try:
                with connection.begin_nested():
                    connection.execute(plan.insert, [row])
            except sa.exc.DBAPIError as row_exc:
                offender, error = row, row_exc
                break
        where = "a batch"
        if offender is not None:
            where = "row " + ", ".join(f"{c.name}={offender.get(c.name)!r}" for c in plan.table.primary_key.columns)
        raise MoveFailed(
            f"{target_kind} rejected {where} of table {plan.table.name}: {db_error_text(error)}; "
            "the target's transaction was rolled back, nothing was changed"
        ) from exc
    plan.copied += len(rows)


def copy_batch(connection: Any, plan: TablePlan, rows: list[dict[str, Any]]) -> bool:
    """PostgreSQL's COPY of one batch (psycopg 3) in a savepoint; False when it did not go in.

    Several times faster than batched INSERTs. Each value goes through its column type's bind processor
    (JSON to its text, ...), as an INSERT would send it. Only for rows that carry every column (COPY
    applies no Python-side default). A batch PostgreSQL refuses is rolled back to its savepoint and left
    to `insert_batch`, which finds and names the row.
    """
    import psycopg
    import sqlalchemy as sa

    columns = list(plan.table.columns)
    if connection.dialect.driver != "psycopg" or set(rows[0]) != {column.name for column in columns}:
        return False
    processors = [column.type.bind_processor(connection.dialect) for column in columns]
    preparer = connection.dialect.identifier_preparer
    names = ", ".join(preparer.quote(column.name) for column in columns)
    statement = f"COPY {preparer.format_table(plan.table)} ({names}) FROM STDIN"
    try:
        with connection.begin_nested():
            with connection.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows:
                    values = (row[column.name] for column in columns)
                    copy.write_row(
                        [v if p is None or v is None else p(v) for v, p in zip(values, processors, strict=True)]
                    )
    except (psycopg.Error, sa.exc.DBAPIError):
        return False
    return True


def set_sequences(connection: Any, metadata: Any) -> list[str]:
    """Move each integer key's sequence past the highest id; return `table: value` notes."""
    import sqlalchemy as sa

    notes = []
    preparer = connection.dialect.identifier_preparer
    for table in metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, sa.Integer):
            continue
        key = keys[0]
        sequence = connection.execute(
            sa.text("SELECT pg_get_serial_sequence(:table, :column)"),
            {"table": preparer.format_table(table), "column": key.name},
        ).scalar()
        if not sequence:
            continue
        highest = connection.execute(sa.select(sa.func.max(key))).scalar()
        if highest is None:
            connection.execute(sa.text("SELECT setval(:sequence, 1, false)"), {"sequence": sequence})
            notes.append(f"{table.name}: next id 1")
        else:
            connection.execute(
                sa.text("SELECT setval(:sequence, :value, true)"), {"sequence": sequence, "value": highest}
            )
            notes.append(f"{table.name}: next id {highest + 1}")
    return notes

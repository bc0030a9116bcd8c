"""The sources: the SQLite file (write-locked while it is read) or a PostgreSQL snapshot, read in batches."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from .common import BATCH_ROWS, VERSION_TABLE, MoveFailed, utc_now

#: How long the source may wait for another connection's write transaction before giving up.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
NAME_RETRY_SECONDS = 0.2


def quote_sqlite(name: str) -> str:
    """An SQLite identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


class SqliteSource:
    """The SQLite file, locked against writes for as long as this process holds it."""

    def __init__(self, path: str) -> None:
        """Remember where it is; open() locks it."""
        self.path = path
        self.connection: sqlite3.Connection | None = None
        self.locked_at = 0.0
        self.journal_mode = ""

    def open(self) -> None:
        """Open read-write (never creating it) and take the write lock."""
        from urllib.parse import quote

        uri = f"file:{quote(os.path.abspath(self.path))}?mode=rw"
        connection = sqlite3.connect(uri, uri=True, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, isolation_level=None)
        # Raw bytes for every text value: text that is not UTF-8 must not stop the read.
        connection.text_factory = bytes
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            connection.close()
            raise MoveFailed(
                f"could not take the write lock on {self.path} within {SQLITE_BUSY_TIMEOUT_SECONDS} s: {exc} "
                "(another connection kept a write transaction open)"
            ) from exc
        self.locked_at = time.monotonic()
        self.connection = connection
        self.journal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0].decode()

    def _db(self) -> sqlite3.Connection:
        if self.connection is None:
            raise MoveFailed("the SQLite source is not open")
        return self.connection

    def columns(self) -> dict[str, list[str]]:
        """Table -> its column names."""
        db = self._db()
        names = [row[0].decode() for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            name: [row[1].decode() for row in db.execute(f"PRAGMA table_info({quote_sqlite(name)})")] for name in names
        }

    def revisions(self, tables: dict[str, list[str]]) -> list[str]:
        """The Alembic revisions recorded (empty without alembic_version)."""
        if VERSION_TABLE not in tables:
            return []
        rows = self._db().execute("SELECT version_num FROM alembic_version").fetchall()
        return sorted(row[0].decode() if isinstance(row[0], bytes) else str(row[0]) for row in rows)

    def count(self, table: str) -> int:
        """Rows in a table."""
        return int(self._db().execute(f"SELECT count(*) FROM {quote_sqlite(table)}").fetchone()[0])  # noqa: S608 - quoted identifiers

    def batches(self, table: Any, columns: list[str]) -> Iterator[list[tuple[Any, ...]]]:
        """The table's rows (raw values of `columns`), in primary-key order, BATCH_ROWS at a time."""
        select = ", ".join(quote_sqlite(name) for name in columns)
        order = ", ".join(quote_sqlite(column.name) for column in table.primary_key.columns) or "rowid"
        cursor = self._db().execute(f"SELECT {select} FROM {quote_sqlite(table.name)} ORDER BY {order}")  # noqa: S608 - quoted identifiers
        try:
            while rows := cursor.fetchmany(BATCH_ROWS):
                yield rows
        finally:
            cursor.close()

    def backup(self, directory: str) -> tuple[str, int]:
        """A consistent copy into `directory` while the lock is held; (path, bytes)."""
        info = os.stat(self.path)
        if not os.path.isdir(directory):
            os.makedirs(directory)
            if os.geteuid() == 0:
                # Made by root for the backend's files: it belongs to the database's owner, as they do.
                os.chown(directory, info.st_uid, info.st_gid)
        # One-second names: never replace an earlier backup.
        while os.path.exists(final := os.path.join(directory, f"pre-move-{utc_now():%Y%m%dT%H%M%SZ}.sqlite3")):
            time.sleep(NAME_RETRY_SECONDS)
        partial = f"{final}.partial"
        from urllib.parse import quote

        # Through a second, read-only connection: SQLite refuses to back up through a connection that
        # holds a write transaction, and readers may still read while we hold the lock (nobody writes).
        reader = sqlite3.connect(f"file:{quote(os.path.abspath(self.path))}?mode=ro", uri=True, timeout=5)
        try:
            copy = sqlite3.connect(partial)
            try:
                reader.backup(copy)
            finally:
                copy.close()
            with open(partial, "rb") as handle:
                os.fsync(handle.fileno())
            if os.geteuid() == 0:
                # The copy belongs to whoever owns the database (the backend's user), as the file does.
                os.chown(partial, info.st_uid, info.st_gid)
            os.chmod(partial, info.st_mode & 0o777)
            os.replace(partial, final)
        except BaseException:
            if os.path.exists(partial):
                os.remove(partial)
            raise
        finally:
            reader.close()
        return final, os.path.getsize(final)

    def release(self) -> None:
        """End the (empty) transaction and close: the lock goes, the file is as it was."""
        if self.connection is not None:
            self.connection.rollback()
            self.connection.close()
            self.connection = None


class PostgresSource:
    """A PostgreSQL database, read in one REPEATABLE READ, read-only transaction (one snapshot)."""

    def __init__(self, url: str) -> None:
        """Remember the URL; open() connects."""
        self.url = url
        self.engine: Any = None
        self.connection: Any = None

    def open(self) -> None:
        """Connect and start the snapshot."""
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        # Session time zone UTC: timestamps read (and fingerprinted) the same whatever the server's default.
        self.engine = sa.create_engine(
            self.url, poolclass=NullPool, hide_parameters=True, connect_args={"options": "-c timezone=UTC"}
        )
        self.connection = self.engine.connect().execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        self.connection.begin()

    def columns(self) -> dict[str, list[str]]:
        """Table -> its column names."""
        import sqlalchemy as sa

        inspector = sa.inspect(self.connection)
        return {name: [c["name"] for c in inspector.get_columns(name)] for name in inspector.get_table_names()}

    def revisions(self, tables: dict[str, list[str]]) -> list[str]:
        """The Alembic revisions recorded (empty without alembic_version)."""
        import sqlalchemy as sa

        if VERSION_TABLE not in tables:
            return []
        return sorted(
            str(v) for v in self.connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
        )

    def count(self, table: str) -> int:
        """Rows in a table."""
        import sqlalchemy as sa

        return int(self.connection.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar_one())

    def batches(self, table: Any, columns: list[str]) -> Iterator[list[tuple[Any, ...]]]:
        """The table's rows (typed; JSON and enums as their text), in primary-key order, BATCH_ROWS at a time."""
        import sqlalchemy as sa

        selected = []
        for name in columns:
            column = table.c[name]
            # JSON as stored (JSON null and SQL NULL stay apart); enums as their stored label.
            if isinstance(column.type, sa.JSON | sa.Enum):
                selected.append(sa.cast(column, sa.Text).label(name))
            else:
                selected.append(column)
        query = sa.select(*selected).order_by(*table.primary_key.columns)
        result = self.connection.execute(
            query, execution_options={"stream_results": True, "max_row_buffer": BATCH_ROWS}
        )
        try:
            for partition in result.partitions(BATCH_ROWS):
                yield [tuple(row) for row in partition]
        finally:
            result.close()

    def release(self) -> None:
        """End the snapshot and disconnect."""
        if self.connection is not None:
            self.connection.rollback()
            self.connection.close()
            self.connection = None
        if self.engine is not None:
            self.engine.dispose()

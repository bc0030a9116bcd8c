"""Data move: copy every row of the release's model tables from one database to another one at head.

Run INSIDE the backend image with the working directory `/app`, as `python -c "$SCRIPT"`, while the
new database is empty and already at the release's Alembic head (made by schema_gate.py), typically
SQLite -> PostgreSQL, and with the same code PostgreSQL -> a new SQLite file (the way back). It uses
only the standard library and the release's own libraries (SQLAlchemy, Alembic, psycopg, the `app`
package); every table, column and type comes from the release's `Base.metadata`, never from SQL
written per table.

Environment:

- `MOVE_SOURCE_URL`: the source, e.g. `sqlite:////app/data/app.db` or `postgresql+psycopg://...`.
- `DATABASE_URL`: the target, e.g. `postgresql+psycopg://user:pw@host:5432/db` (query options such as
  `sslmode=verify-full&sslrootcert=...` are passed on), or `sqlite:////app/data/new.db` on the way back.
- `ENCRYPTION_KEY`, `JWT_SECRET_KEY`: unused, but the release's settings (imported with the models)
  refuse to exist without them.
- `MOVE_BACKUP_DIR` (optional, SQLite source): a consistent copy of the source is written there as
  `pre-move-<UTC %Y%m%dT%H%M%SZ>.sqlite3` (under `.partial` first, removed on failure) before anything
  is copied; run as root, the directory (if made here) and the copy get the database file's owner.
- `MOVE_REPORT` (optional): every line printed is also written to this file (its directory is made)
  at the end, pass or fail, under `.partial` first.
- `STEP_DONE` (optional): touched on success and on "nothing to move". `MOVE_HOLD=1` (needs STEP_DONE;
  SQLite source only): after success, touch it and keep holding the SQLite write lock until the process
  is killed or gets SIGTERM (see below). `MOVE_RELEASE_AFTER` (optional, with MOVE_HOLD): the backend's
  `/health` URL; the lock is released once it has failed and then answered again (the old backend
  replaced by the new one), and the process idles on.

Whoever runs it must be able to open the SQLite file read-write (its owner, uid 1000 in the image, or
root) and to write MOVE_BACKUP_DIR and MOVE_REPORT.

Why it works the way it does:

- The move runs while the OLD backend still serves on the SQLite file. The script takes SQLite's write
  lock (`BEGIN IMMEDIATE`, busy timeout 30 s) before it reads anything: readers go on, but every write
  of the old backend waits for its busy timeout and fails with "database is locked", so nothing can land
  in SQLite after the copy and be lost. With MOVE_HOLD=1 the lock is kept after success until the step's
  container is removed (after the old backend is stopped). The source is opened read-write only because
  SQLite takes that lock on read-write connections; nothing is ever written to it (the release keeps the
  default rollback journal, and a transaction that writes nothing leaves the file byte-for-byte as it
  was). Values are read raw (`text_factory=bytes`), so text that is not UTF-8 cannot stop the read.
- The target is written in ONE transaction: a failure or refusal at any point leaves it as it was.
  Rows are converted per the target column's SQLAlchemy type (SQLite holds 0/1 booleans, timestamps as
  text with or without offsets, JSON as text; PostgreSQL text cannot hold NUL), written in batches,
  each in a savepoint: into PostgreSQL with `COPY` (psycopg 3; several times faster than INSERTs), else
  with SQLAlchemy Core INSERTs; a batch the database refuses is inserted again row by row, so the
  rejected row can be found and named. Row counts
  are compared inside the transaction before it commits, and integer keys' sequences are moved past
  the highest id copied.
- A marker row (`argusai_data_move`: source, SHA-256 fingerprint of the source rows and revision, row
  counts, time) is committed with the data. A repeated run with an unchanged source reports "already
  moved" and copies nothing; a changed source, or a target holding rows without a marker, is refused:
  the move never overwrites or merges. Rows an empty database gets from the release's own migration
  chain (e.g. the default `system_settings` of migration 005 in a gated SQLite file) do not count as
  data: they are found by replaying the chain on an in-memory SQLite database and replaced by the
  source's rows.
- `alembic_version` is compared, never copied: both sides must be at the same revisions. Tables the
  models do not define (the FTS5 index `events_fts*`, the marker) are never copied: on the way back the
  release's triggers fill `events_fts` as the rows arrive.

Report (stdout), in order: the lock taken (SQLite source), the backup written, one line per model table
(`table <name>: <N> rows (<conversion> <count>, ...)`), the rows whose text lost NUL characters or was
read as Latin-1 (`<table>.<column> in <n> row(s), e.g. <key>`), the sequences set, `copied <N> rows in
<T> s (<R> rows/s)`, `writes to <file> paused for <S> s`, and last `moved <N> rows in <T> s from <source>
to <target> (rev <revision>)` (URLs without password or query); or `already moved at <time> (<N> rows);
nothing copied`, or `... nothing to move`.

Exit status: 0 moved, already moved, or nothing to move; 3 refused (nothing was changed); 1 any other
failure (the target's transaction was rolled back). Every line starts with `data-move:`; a failure's
line, `data-move: FAILED: ...`, goes to stderr. No password is ever printed.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import hashlib
import json
import os
import re
import signal
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

PREFIX = "data-move"
REQUIRED_ENV = ("MOVE_SOURCE_URL", "DATABASE_URL", "ENCRYPTION_KEY", "JWT_SECRET_KEY")
ALEMBIC_INI = "alembic.ini"
VERSION_TABLE = "alembic_version"
MARKER_TABLE = "argusai_data_move"
#: Rows per read from the source and per INSERT batch (an executemany of dicts).
BATCH_ROWS = 2000
#: How long the source may wait for another connection's write transaction before giving up.
SQLITE_BUSY_TIMEOUT_SECONDS = 30
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 3
#: Rows named per column for conversions worth looking at (NUL removed, Latin-1 read).
EXAMPLES_PER_COLUMN = 3
#: Columns named that way at most (the table lines count them all).
MAX_EXAMPLE_LINES = 100
HOLD_SLEEP_SECONDS = 3600
# MOVE_RELEASE_AFTER: how often, and how patiently, the backend's /health is asked while the lock is held.
HOLD_PROBE_SECONDS = 0.5
HOLD_PROBE_TIMEOUT_SECONDS = 2
HTTP_OK = 200
NAME_RETRY_SECONDS = 0.2
#: Shorter secrets are not masked in free text (masking every "a" would garble the report).
MIN_MASKED_SECRET_CHARS = 4
#: A key for pg_advisory_xact_lock: two moves into one PostgreSQL database run one after the other.
ADVISORY_LOCK_KEY = 0x41524755  # "ARGU"
#: Unix times in DateTime columns beyond this are refused rather than guessed (milliseconds?).
MAX_EPOCH_SECONDS = 1e11
BOOL_TEXT = {
    "1": True,
    "0": False,
    "true": True,
    "false": False,
    "t": True,
    "f": False,
    "yes": True,
    "no": False,
    "y": True,
    "n": False,
    "on": True,
    "off": False,
}
#: Timestamps SQLite may hold that datetime.fromisoformat does not read (e.g. more than 6 fraction digits).
TIMESTAMP_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$",
    re.IGNORECASE,
)
MICRO_DIGITS = 6


class MoveRefused(Exception):
    """The move is not done (exit 3); nothing was changed."""


class MoveFailed(Exception):
    """The move failed (exit 1); the target's transaction was rolled back."""


class ConversionError(ValueError):
    """A source value cannot be converted to its target column's type."""


class Report:
    """The lines the script prints (stdout, failures on stderr), masked, kept for MOVE_REPORT."""

    def __init__(self, path: str = "") -> None:
        """Start with no line and nothing to mask; `path` is MOVE_REPORT (empty: none)."""
        self.lines: list[str] = []
        self.secrets: list[str] = []
        self.path = path
        self.written = False

    def mask(self, *secrets: str | None) -> None:
        """Never print these (passwords of the URLs)."""
        from urllib.parse import quote

        for secret in secrets:
            if secret and len(secret) >= MIN_MASKED_SECRET_CHARS:
                self.secrets.extend({secret, quote(secret, safe="")})

    def clean(self, text: str) -> str:
        """The text with every known secret replaced by ***."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def line(self, message: str, *, error: bool = False) -> None:
        """Print one `data-move:` line."""
        text = self.clean(f"{PREFIX}: {message}")
        self.lines.append(text)
        print(text, file=sys.stderr if error else sys.stdout, flush=True)

    def write(self) -> None:
        """Write every line to MOVE_REPORT, once (a temporary name, then renamed); a failure is only noted."""
        if not self.path or self.written:
            return
        self.written = True
        partial = f"{self.path}.partial"
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            with open(partial, "w", encoding="utf-8") as handle:
                handle.write("\n".join(self.lines) + "\n")
            os.replace(partial, self.path)
        except OSError as exc:
            print(f"{PREFIX}: could not write MOVE_REPORT {self.path}: {exc}", file=sys.stderr, flush=True)


def masked(url: str) -> str:
    """The URL without its password (and without query options, which may name files or keys)."""
    import sqlalchemy as sa

    parsed = sa.engine.make_url(url)
    return parsed.set(query={}).render_as_string(hide_password=True)


def parse_url(variable: str, url: str) -> Any:
    """A SQLAlchemy URL; an unreadable one is refused without showing it (it may hold a password)."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise MoveFailed(f"{variable} is not a database URL (not shown: it may hold a password)") from None


def quote_sqlite(name: str) -> str:
    """An SQLite identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def utc_now() -> datetime.datetime:
    """Now, timezone-aware UTC."""
    return datetime.datetime.now(datetime.UTC)


def touch(path: str) -> None:
    """Create (or refresh) an empty file."""
    with open(path, "a", encoding="utf-8"):
        os.utime(path)


def db_error_text(exc: BaseException) -> str:
    """The database's own message (never SQLAlchemy's, which would add the statement and values)."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split())
    return text or type(orig).__name__


# ---------------------------------------------------------------------------------------------------
# Conversion of source values to what the target column's SQLAlchemy type takes
# ---------------------------------------------------------------------------------------------------


@dataclass
class TableStats:
    """What was converted in one table."""

    cells: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    """(column, kind) -> a one-element counter (cheaper to bump in the hot loop than a Counter)."""
    events: list[tuple[str, str]] = field(default_factory=list)
    """Notable conversions of the current row, (column, kind); the row loop names them with its key."""
    examples: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(column, notable kind) -> primary keys of the first rows it happened in."""

    def cell(self, column: str, kind: str) -> list[int]:
        """The counter of one kind of conversion in one column."""
        return self.cells.setdefault((column, kind), [0])

    def count(self, column: str, kind: str) -> int:
        """How many values of a column were converted that way."""
        return self.cells.get((column, kind), [0])[0]

    def kinds(self) -> Counter[str]:
        """Kind -> count over all columns (kinds that never happened left out)."""
        total: Counter[str] = Counter()
        for (_, kind), (count,) in self.cells.items():
            if count:
                total[kind] += count
        return total


Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class ColumnConverter:
    """How one column's source values become the target's."""

    convert: Converter
    fast: type | None
    """Values of exactly this Python type are already what the target takes (e.g. int for Integer)."""


def notable(stats: TableStats, column: str, kind: str) -> None:
    """Count a conversion the report names row by row, and remember it for the current row."""
    stats.cell(column, kind)[0] += 1
    stats.events.append((column, kind))


def decode_text(raw: bytes, column: str, stats: TableStats) -> str:
    """SQLite's raw text: UTF-8, else Latin-1 (counted and named)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Latin-1 maps every byte to a character: never fails, and is what such bytes usually were.
        notable(stats, column, "Latin-1 read")
        return raw.decode("latin-1")


def text_of(value: Any, column: str, stats: TableStats) -> str:
    """A text value from SQLite's raw bytes or a typed value."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return decode_text(bytes(value), column, stats)
    raise ConversionError(f"{type(value).__name__} is not text")


def make_converter(column: Any, stats: TableStats) -> ColumnConverter:
    """How a source value (raw from SQLite, or typed from PostgreSQL) becomes the column's, per its type class."""
    import sqlalchemy as sa

    name = column.name
    type_ = column.type
    if isinstance(type_, sa.types.TypeDecorator):
        type_ = type_.impl_instance

    if isinstance(type_, sa.Boolean):
        from_01, from_number, from_text = (
            stats.cell(name, kind) for kind in ("boolean from 0/1", "boolean from other number", "boolean from text")
        )

        def to_bool(value: Any) -> bool:
            if isinstance(value, int | float):
                if value in (0, 1):
                    from_01[0] += 1
                else:
                    from_number[0] += 1
                return bool(value)
            text = text_of(value, name, stats).strip().lower()
            if text in BOOL_TEXT:
                from_text[0] += 1
                return BOOL_TEXT[text]
            raise ConversionError(f"{text!r} is not a boolean")

        return ColumnConverter(to_bool, bool)

    if isinstance(type_, sa.DateTime):
        aware = bool(type_.timezone)
        naive_text, offset_text, made_naive = (
            stats.cell(name, kind)
            for kind in ("timestamp without offset (UTC)", "timestamp with offset", "aware timestamp to naive UTC")
        )
        utc = datetime.UTC

        def to_datetime(value: Any) -> datetime.datetime:
            if type(value) is bytes:
                try:
                    moment = datetime.datetime.fromisoformat(value.decode("ascii"))
                except ValueError:  # UnicodeDecodeError too
                    moment = parse_datetime(value, name, stats)
                else:
                    (offset_text if moment.tzinfo else naive_text)[0] += 1
            else:
                moment = parse_datetime(value, name, stats)
            if aware:
                return moment.replace(tzinfo=utc) if moment.tzinfo is None else moment.astimezone(utc)
            if moment.tzinfo is not None:
                made_naive[0] += 1
                return moment.astimezone(utc).replace(tzinfo=None)
            return moment

        return ColumnConverter(to_datetime, None)

    if isinstance(type_, sa.Date):
        date_text = stats.cell(name, "date from text")

        def to_date(value: Any) -> datetime.date:
            if isinstance(value, datetime.datetime):
                return value.date()
            if isinstance(value, datetime.date):
                return value
            text = text_of(value, name, stats).strip()
            date_text[0] += 1
            try:
                return datetime.date.fromisoformat(text[:10])
            except ValueError as exc:
                raise ConversionError(f"{text!r} is not a date") from exc

        return ColumnConverter(to_date, datetime.date)

    if isinstance(type_, sa.Time):
        time_text = stats.cell(name, "time from text")

        def to_time(value: Any) -> datetime.time:
            if isinstance(value, datetime.time):
                return value
            text = text_of(value, name, stats).strip()
            time_text[0] += 1
            try:
                return datetime.time.fromisoformat(text)
            except ValueError as exc:
                raise ConversionError(f"{text!r} is not a time") from exc

        return ColumnConverter(to_time, datetime.time)

    if isinstance(type_, sa.Integer):
        from_real, from_text = (stats.cell(name, kind) for kind in ("integer from real", "integer from text"))

        def to_int(value: Any) -> int:
            if isinstance(value, int):  # bool too
                return int(value)
            if isinstance(value, float | decimal.Decimal):
                if value != int(value):
                    raise ConversionError(f"{value!r} is not an integer")
                from_real[0] += 1
                return int(value)
            text = text_of(value, name, stats).strip()
            from_text[0] += 1
            try:
                number = decimal.Decimal(text)
            except decimal.InvalidOperation as exc:
                raise ConversionError(f"{text!r} is not an integer") from exc
            if not number.is_finite() or number != number.to_integral_value():
                raise ConversionError(f"{text!r} is not an integer")
            return int(number)

        return ColumnConverter(to_int, int)

    if isinstance(type_, sa.Numeric):  # Float too (a subclass)
        as_decimal = bool(type_.asdecimal)
        number_text = stats.cell(name, "number from text")

        def to_number(value: Any) -> Any:
            if isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool):
                return decimal.Decimal(str(value)) if as_decimal else float(value)
            text = text_of(value, name, stats).strip()
            number_text[0] += 1
            try:
                return decimal.Decimal(text) if as_decimal else float(text)
            except (ValueError, decimal.InvalidOperation) as exc:
                raise ConversionError(f"{text!r} is not a number") from exc

        return ColumnConverter(to_number, decimal.Decimal if as_decimal else float)

    if isinstance(type_, sa.JSON):
        json_text = stats.cell(name, "JSON parsed from text")
        json_null = sa.JSON.NULL

        def to_json(value: Any) -> Any:
            if isinstance(value, dict | list):
                return value
            text = text_of(value, name, stats)
            json_text[0] += 1
            try:
                parsed = json.loads(text)
            except ValueError as exc:
                raise ConversionError(f"invalid JSON ({exc})") from exc
            # SQL NULL arrives as None (never converted); a stored JSON `null` stays JSON null.
            return json_null if parsed is None else parsed

        return ColumnConverter(to_json, None)

    if isinstance(type_, sa.LargeBinary):
        binary_text = stats.cell(name, "binary from text")

        def to_bytes(value: Any) -> bytes:
            if isinstance(value, bytes | bytearray | memoryview):
                return bytes(value)
            binary_text[0] += 1
            return str(value).encode("utf-8")

        return ColumnConverter(to_bytes, bytes)

    if isinstance(type_, sa.Enum):
        allowed = set(type_.enums)

        def to_enum(value: Any) -> Any:
            if isinstance(value, enum.Enum):
                return value
            text = text_of(value, name, stats)
            if text not in allowed:
                raise ConversionError(f"{text!r} is not one of the enum's values {sorted(allowed)}")
            return text

        # A str comes from PostgreSQL, which only holds the enum's own labels.
        return ColumnConverter(to_enum, str)

    if isinstance(type_, sa.String):  # String, Text, Unicode, ...
        from_number = stats.cell(name, "text from number")

        def to_text(value: Any) -> str:
            if type(value) is bytes:
                text = decode_text(value, name, stats)
            elif isinstance(value, int | float) and not isinstance(value, bool):
                from_number[0] += 1
                text = str(value)
            else:
                text = text_of(value, name, stats)
            if "\x00" in text:
                # PostgreSQL text cannot hold NUL; SQLite can (a client wrote it).
                notable(stats, name, "NUL removed")
                text = text.replace("\x00", "")
            return text

        # A str comes from PostgreSQL, whose text never holds NUL.
        return ColumnConverter(to_text, str)

    # A type the release does not use yet: hand the value over as it is (the database checks it).
    return ColumnConverter(lambda value: value, None)


def parse_datetime(value: Any, column: str, stats: TableStats) -> datetime.datetime:
    """A datetime from SQLite's text (naive = UTC; offsets honoured), a number (Unix time) or a datetime."""
    if isinstance(value, datetime.datetime):
        return value
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if abs(value) > MAX_EPOCH_SECONDS:
            raise ConversionError(f"{value!r} is not a Unix time in seconds")
        stats.cell(column, "timestamp from Unix time")[0] += 1
        return datetime.datetime.fromtimestamp(value, datetime.UTC)
    text = text_of(value, column, stats).strip()
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        moment = parse_timestamp_text(text)
    stats.cell(column, "timestamp with offset" if moment.tzinfo else "timestamp without offset (UTC)")[0] += 1
    return moment


def parse_timestamp_text(text: str) -> datetime.datetime:
    """The forms fromisoformat refuses: fractions longer than microseconds, `+hhmm`, a trailing space."""
    match = TIMESTAMP_RE.match(text)
    if not match:
        raise ConversionError(f"{text!r} is not a timestamp")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:MICRO_DIGITS].ljust(MICRO_DIGITS, "0"))
    tz = None
    if offset:
        if offset.upper() == "Z":
            tz = datetime.UTC
        else:
            digits = offset[1:].replace(":", "")
            delta = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            tz = datetime.timezone(delta if offset[0] == "+" else -delta)
    try:
        return datetime.datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro, tz
        )
    except ValueError as exc:
        raise ConversionError(f"{text!r} is not a timestamp ({exc})") from exc


# ---------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------
# The move
# ---------------------------------------------------------------------------------------------------


@dataclass
class TablePlan:
    """How one model table is copied."""

    table: Any
    """The model table."""
    columns: list[str]
    """Columns read from the source and written (the model's, that the source has)."""
    insert: Any
    """INSERT into the target (JSON columns keep SQL NULL apart from JSON null)."""
    converters: list[tuple[int, str, Converter, type | None]]
    """(position, column, convert, fast type) of every column."""
    pk_positions: list[int]
    stats: TableStats
    self_refs: list[tuple[int, int]]
    """(position of the referencing column, position of the referenced one) of foreign keys to itself."""
    copied: int = 0


def build_plans(metadata: Any, source_columns: dict[str, list[str]], report: Report) -> list[TablePlan]:
    """One plan per model table, in foreign-key order; refuses a model NOT NULL column the source lacks."""
    import sqlalchemy as sa

    missing_tables = [t.name for t in metadata.sorted_tables if t.name not in source_columns]
    if missing_tables:
        raise MoveRefused(
            f"the source lacks model table(s) {', '.join(missing_tables)}: it is not this release's schema"
        )
    plans = []
    for table in metadata.sorted_tables:
        present = source_columns[table.name]
        extra = [name for name in present if name not in table.c]
        if extra:
            report.line(f"table {table.name}: source column(s) the models lack, not copied: {', '.join(extra)}")
        lacking = [column for column in table.columns if column.name not in present]
        required = [column.name for column in lacking if not column.nullable]
        if required:
            raise MoveRefused(
                f"the source table {table.name} lacks the NOT NULL column(s) {', '.join(required)} of the models"
            )
        if lacking:
            report.line(
                f"table {table.name}: column(s) the source lacks get NULL or their default: "
                f"{', '.join(column.name for column in lacking)}"
            )
        columns = [column.name for column in table.columns if column.name in present]
        # A copy of the table whose JSON columns write None as SQL NULL (JSON null is passed as JSON.NULL).
        target = table.to_metadata(sa.MetaData())
        for column in target.columns:
            if isinstance(column.type, sa.JSON):
                column.type = column.type.copy()
                column.type.none_as_null = True
        stats = TableStats()
        position = {name: index for index, name in enumerate(columns)}
        self_refs = [
            (position[fk.parent.name], position[fk.column.name])
            for fk in table.foreign_keys
            if fk.column.table is table and fk.parent.name in position and fk.column.name in position
        ]
        plans.append(
            TablePlan(
                table=table,
                columns=columns,
                insert=target.insert(),
                converters=[
                    (index, name, converter.convert, converter.fast)
                    for index, name in enumerate(columns)
                    for converter in [make_converter(table.c[name], stats)]
                ],
                pk_positions=[position[c.name] for c in table.primary_key.columns if c.name in position],
                stats=stats,
                self_refs=self_refs,
            )
        )
    return plans


def key_text(plan: TablePlan, raw: tuple[Any, ...]) -> str:
    """A row's primary key, readable, e.g. `id=5` or `entity_id='a', event_id='b'`."""
    parts = []
    for position in plan.pk_positions:
        value = raw[position]
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        parts.append(f"{plan.columns[position]}={value!r}")
    return ", ".join(parts) or "(no primary key)"


def hash_table(hasher: Any, plan: TablePlan) -> None:
    """Start a table in the fingerprint."""
    hasher.update(f"\ntable {plan.table.name} {','.join(plan.columns)}\n".encode())


def hash_rows(hasher: Any, rows: list[tuple[Any, ...]]) -> None:
    """Add rows (raw source values) to the fingerprint."""
    for row in rows:
        hasher.update(repr(row).encode("utf-8", "backslashreplace"))
        hasher.update(b"\n")


def fingerprint(source: Any, plans: list[TablePlan], revisions: list[str]) -> str:
    """SHA-256 over every model table's rows (name, then raw values in key order) and the revision."""
    hasher = hashlib.sha256()
    for plan in plans:
        hash_table(hasher, plan)
        for rows in source.batches(plan.table, plan.columns):
            hash_rows(hasher, rows)
    hasher.update(f"\nrevision {','.join(revisions)}\n".encode())
    return hasher.hexdigest()


def convert_rows(plan: TablePlan, rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Source rows as the target's parameter dicts; refuses a value that cannot be converted."""
    names = plan.columns
    converters = plan.converters
    stats = plan.stats
    events = stats.events
    out = []
    for raw in rows:
        values = dict(zip(names, raw, strict=True))
        for index, name, convert, fast in converters:
            value = raw[index]
            # NULL stays NULL; a value already of the target's Python type needs nothing (the hot path).
            if value is None or type(value) is fast:
                continue
            try:
                values[name] = convert(value)
            except ConversionError as exc:
                raise MoveRefused(
                    f"table {plan.table.name}, column {name}, row {key_text(plan, raw)}: {exc}; nothing was changed"
                ) from exc
        if events:
            for key in events:
                examples = stats.examples.setdefault(key, [])
                if len(examples) < EXAMPLES_PER_COLUMN:
                    examples.append(key_text(plan, raw))
            events.clear()
        out.append(values)
    return out


def parents_first(plan: TablePlan, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a table with a foreign key to itself, each referenced row before the rows referencing it.

    A depth-first walk up each row's parents; a reference to a row that is not in the table (the
    database rejects it and names it) or a cycle keeps the source's order.
    """
    names = plan.columns
    refs = [(names[source], names[target]) for source, target in plan.self_refs]
    where = {target: {row[target]: index for index, row in enumerate(rows)} for _, target in refs}
    parents: list[list[int]] = []
    for index, row in enumerate(rows):
        found = [where[target].get(row[source]) for source, target in refs if row[source] is not None]
        parents.append([parent for parent in found if parent is not None and parent != index])
    new, visiting, placed = 0, 1, 2
    state = [new] * len(rows)
    ordered: list[dict[str, Any]] = []
    for start in range(len(rows)):
        if state[start] != new:
            continue
        state[start] = visiting
        stack = [(start, iter(parents[start]))]
        while stack:
            node, pending = stack[-1]
            parent = next(pending, None)
            if parent is None:
                stack.pop()
                state[node] = placed
                ordered.append(rows[node])
            elif state[parent] == new:
                state[parent] = visiting
                stack.append((parent, iter(parents[parent])))
    return ordered


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


def marker_table() -> Any:
    """The marker table (in its own MetaData: it is no model of the release)."""
    import sqlalchemy as sa

    return sa.Table(
        MARKER_TABLE,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("revision", sa.Text, nullable=False),
        sa.Column("row_counts", sa.Text, nullable=False),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=False),
    )


def read_marker(connection: Any, marker: Any) -> Any:
    """The latest marker row, or None."""
    import sqlalchemy as sa

    if not sa.inspect(connection).has_table(MARKER_TABLE):
        return None
    return connection.execute(sa.select(marker).order_by(marker.c.id.desc()).limit(1)).first()


def target_counts(connection: Any, metadata: Any) -> dict[str, int]:
    """Rows per model table in the target."""
    import sqlalchemy as sa

    return {
        table.name: int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
        for table in metadata.sorted_tables
    }


def target_revisions(connection: Any) -> list[str]:
    """The target's Alembic revisions (empty without alembic_version)."""
    import sqlalchemy as sa

    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return []
    return sorted(str(v) for v in connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())


def rows_by_key(connection: Any, table: Any) -> dict[tuple[Any, ...], dict[str, Any]]:
    """A table's rows keyed by primary key, without its timestamps (which say when, not what)."""
    import sqlalchemy as sa

    kept = [c for c in table.columns if not isinstance(c.type, sa.DateTime | sa.Date | sa.Time)]
    result = {}
    for row in connection.execute(sa.select(*kept)).mappings():
        result[tuple(row[c.name] for c in table.primary_key.columns)] = dict(row)
    return result


def chain_seeds(metadata: Any, tables: list[str]) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
    """The rows the release's own migration chain puts in `tables` of an empty SQLite database.

    Replays the chain (no env.py: it would target DATABASE_URL) on an in-memory database.
    """
    import sqlalchemy as sa
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory
    from sqlalchemy.pool import StaticPool

    config = Config(ALEMBIC_INI)
    script = ScriptDirectory.from_config(config)
    engine = sa.create_engine("sqlite://", poolclass=StaticPool)
    try:
        with engine.connect() as connection:

            def upgrade(revision: Any, _context: Any) -> Any:
                return script._upgrade_revs("heads", revision)  # what `alembic upgrade` itself calls

            with EnvironmentContext(config, script, fn=upgrade, destination_rev="heads") as environment:
                environment.configure(connection=connection, target_metadata=None)
                with environment.begin_transaction():
                    environment.run_migrations()
            connection.commit()
            present = set(sa.inspect(connection).get_table_names())
            return {name: rows_by_key(connection, metadata.tables[name]) if name in present else {} for name in tables}
    finally:
        engine.dispose()


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


def how_to_proceed(source_kind: str, target_kind: str) -> str:
    """The two ways on after a refusal."""
    keep = (
        f"To keep the {target_kind} data, move the SQLite file aside (e.g. rename app.db) so there is nothing to move"
        if source_kind == "SQLite"
        else f"To keep the {target_kind} data, do not move again"
    )
    return f"{keep}; to move again, back up the {target_kind} database and empty it (then run the schema gate on it)."


def format_counts(counts: dict[str, int]) -> str:
    """`table: rows, ...` of the tables with rows."""
    return ", ".join(f"{name}: {count}" for name, count in counts.items() if count)


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


def finish_success(ctx: Context) -> None:
    """Write the report, touch STEP_DONE; with MOVE_HOLD keep the SQLite lock until killed, else release it."""
    ctx.report.write()
    if ctx.step_done:
        touch(ctx.step_done)
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
    # `python /dev/stdin` puts /dev, not the working directory, first on sys.path.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


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


def move(report: Report) -> int:
    """Do the move; return the exit status (refusals and failures raise)."""
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
    step_done = os.environ.get("STEP_DONE", "")

    # 1. No SQLite file: nothing to move (a fresh install).
    if source_dialect == "sqlite":
        path = source_parsed.database or ""
        if not path or path == ":memory:":
            raise MoveFailed("MOVE_SOURCE_URL names no SQLite file")
        if not os.path.isfile(path):
            report.line(f"no SQLite database at {path}; nothing to move")
            if step_done:
                touch(step_done)
            return EXIT_OK
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
        step_done=step_done,
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
            if step_done:
                touch(step_done)
            source.release()
            return EXIT_OK
        plans = build_plans(metadata, source_columns, report)
        revisions = source.revisions(source_columns)
        status = copy_into_target(ctx, metadata, plans, counts, revisions, source_kind, target_kind)
    except BaseException:
        source.release()
        raise
    finish_success(ctx)
    return status


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


def seeded_only(connection: Any, metadata: Any, held: dict[str, int], report: Report) -> dict[str, int]:
    """`held` when every row the target holds is one its migration chain seeds; else {}."""
    try:
        seeds = chain_seeds(metadata, list(held))
    except Exception as exc:  # cannot tell: the rows count as data (refused)
        report.line(f"could not replay the migration chain to tell seeded rows from data: {exc}")
        return {}
    for name in held:
        if not seeds.get(name) or rows_by_key(connection, metadata.tables[name]) != seeds[name]:
            return {}
    return held


def main() -> int:
    """Run the move; print the report, write MOVE_REPORT, return the exit status."""
    report = Report(os.environ.get("MOVE_REPORT", "").strip())
    try:
        status = move(report)
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
    return status


if __name__ == "__main__":
    sys.exit(main())

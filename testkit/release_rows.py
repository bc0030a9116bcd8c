"""Rows in EVERY model table of the real release's SQLite database, stored the odd ways real files hold them.

This module is itself the script: the tests run its text (`SCRIPT`) inside the backend image with
`python -c` (cwd /app, DATABASE_URL=sqlite:////app/data/app.db at the release's head, made by the schema
gate). It imports only the standard library at the top, so the tests can import it too.

Driven by the release's `Base.metadata` only, no code per table: for each table of `sorted_tables`,
ROWS_PER_TABLE rows whose values exercise every column's type, satisfying NOT NULL, unique constraints,
the CHECK constraints the models declare (`col IN (...)`, bounds like `col >= 0 AND col <= 1`, read from
their text) and foreign keys (rows of the referenced table, inserted earlier). A table with a foreign
key to itself gets a chain whose referenced rows sort AFTER the rows that reference them, so a copy
in primary-key order would break the key. Rows are written with raw sqlite3 (as a real SQLite file
written by the release, other tools or older versions may hold them):

- booleans as 0/1 integers;
- timestamps in SQLAlchemy's SQLite format (naive, UTC), ISO with a `+02:00` offset, and without fraction;
- JSON as text (an object with non-ASCII text, an array, SQL NULL where nullable);
- in one text column per table (the first that is no key and takes at least 8 characters): a value with
  a NUL character (row 1) and Latin-1 bytes that are not UTF-8, `café`, stored as TEXT (row 2);
- non-ASCII text in every other text value (cut to its String(n) length).

Everything is deterministic. It may run beside the release's own rows (and its running backend): integer
keys start after the table's highest, text keys and unique values carry a prefix the release never writes,
and it waits up to BUSY_TIMEOUT_SECONDS for another writer. The last line printed is a JSON object
{table: rows after the insert}; `parse_counts` reads it.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

ROWS_PER_TABLE = 3
#: The value with a NUL character, and what PostgreSQL gets (NUL removed).
NUL_TEXT = "nul\x00here"
NUL_CLEANED = "nulhere"
#: Latin-1 bytes (not UTF-8), stored as TEXT; read back as "café".
LATIN1_BYTES = "café".encode("latin-1")
LATIN1_TEXT = "café"
#: The three stored forms of a timestamp, by row: SQLAlchemy's SQLite format (UTC), an offset, no fraction.
TIMESTAMPS = ("2024-05-01 10:00:00.000000", "2024-05-01T12:30:00+02:00", "2024-05-01 10:31:07")
OFFSET_TIMESTAMP = TIMESTAMPS[1]
JSON_TEXTS = ('{"k": [1, 2, "é"], "n": null, "ok": true}', '[1, "two", {"3": 4.5}]')
NON_ASCII_SUFFIX = "ünï"
#: A text column gets the odd values only if it takes at least this many characters.
SPECIAL_MIN_LENGTH = 8
#: How far inside a strict bound (`>`, `<`) a real value goes.
STRICT_STEP = 0.001
#: Integers without bounds: 3, 13, 23.
INTEGER_BASE, INTEGER_STEP = 3, 10
INTEGER_PK_STEP = 4  # ids 1, 5, 9: gaps, as deletions leave them
CHOICE_RE = re.compile(r"(\w+)\s+IN\s*\(([^)]*)\)", re.IGNORECASE)
BOUND_RE = re.compile(r"(\w+)\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)")
DEFAULT_URL = "sqlite:////app/data/app.db"
BUSY_TIMEOUT_SECONDS = 30
#: This module's text: run it in the backend image with `python -c` (where there is no `__file__`).
SCRIPT = Path(__file__).read_text(encoding="utf-8") if "__file__" in globals() else ""


class Latin1(bytes):
    """Bytes to store as TEXT (`CAST(? AS TEXT)`), not as a BLOB."""


def parse_counts(output: str) -> dict[str, int]:
    """The {table: rows} object the script printed last (stderr lines interleaved after it are skipped)."""
    for line in reversed(output.strip().splitlines()):
        try:
            counts = json.loads(line)
        except ValueError:
            continue
        if isinstance(counts, dict):
            return {str(name): int(count) for name, count in counts.items()}
    raise ValueError(f"release_rows printed no JSON object of row counts: {output[-2000:]}")


def check_rules(table: Any) -> tuple[dict[str, list[str]], dict[str, dict[str, float]]]:
    """Per column, the choices (`IN (...)`) and bounds (`>=`, `<=`, ...) its CHECK constraints declare."""
    import sqlalchemy as sa

    choices: dict[str, list[str]] = {}
    bounds: dict[str, dict[str, float]] = {}
    for constraint in table.constraints:
        if not isinstance(constraint, sa.CheckConstraint):
            continue
        text = str(constraint.sqltext)
        for column, listed in CHOICE_RE.findall(text):
            choices[column] = re.findall(r"'([^']*)'", listed)
        for column, operator, number in BOUND_RE.findall(text):
            bounds.setdefault(column, {})[operator] = float(number)
    return choices, bounds


def special_column(table: Any, choices: dict[str, list[str]]) -> str | None:
    """The text column that gets the NUL and Latin-1 values: the first that is no key and is long enough."""
    import sqlalchemy as sa

    for column in table.columns:
        if not isinstance(column.type, sa.String) or isinstance(column.type, sa.Enum):
            continue
        if column.primary_key or column.foreign_keys or column.name in choices:
            continue
        if column.type.length is None or column.type.length >= SPECIAL_MIN_LENGTH:
            return column.name
    return None


def number_in(bounds: dict[str, float], index: int, *, integer: bool) -> float:
    """A value within the bounds a CHECK constraint declares, different per row."""
    step = 1 if integer else STRICT_STEP
    low = bounds.get(">=", bounds[">"] + step if ">" in bounds else None)
    high = bounds.get("<=", bounds["<"] - step if "<" in bounds else None)
    if integer:
        value = int(low if low is not None else INTEGER_BASE) + index
        return min(value, int(high)) if high is not None else value
    if low is not None and high is not None:
        return low + (high - low) * (index + 1) / (ROWS_PER_TABLE + 1)
    return (low if low is not None else 0.0) + index + 0.25


def text_value(column: Any, index: int, self_referencing: bool) -> str:
    """A text value unique per row, non-ASCII where it fits, cut to the column's length."""
    if column.primary_key:
        # Keys of a table referencing itself run backwards: referenced rows sort after their referrers.
        number = ROWS_PER_TABLE - index if self_referencing else index
        value = f"{column.table.name}-{number}"
    else:
        value = f"{index}-{column.name}-{NON_ASCII_SUFFIX}"
    length = column.type.length
    return value[:length] if length else value


def value_for(column: Any, index: int, made: dict[str, list[dict[str, Any]]], context: dict[str, Any]) -> Any:
    """The stored value of one column in row `index`."""
    import sqlalchemy as sa

    table = column.table
    type_ = column.type
    choices, bounds, special, self_referencing, row = (
        context["choices"],
        context["bounds"],
        context["special"],
        context["self_referencing"],
        context["row"],
    )
    if column.foreign_keys:
        target = next(iter(column.foreign_keys)).column
        if target.table is table:
            if index == 0:
                return None if column.nullable else row[target.name]
            return made[table.name][index - 1][target.name]
        referenced = made[target.table.name]
        return referenced[index % len(referenced)][target.name]
    if column.name in choices:
        return choices[column.name][index % len(choices[column.name])]
    if isinstance(type_, sa.Enum):
        return type_.enums[index % len(type_.enums)]
    if isinstance(type_, sa.Boolean):
        return index % 2
    if isinstance(type_, sa.Integer):
        if column.primary_key:
            return context["key_base"] + 1 + INTEGER_PK_STEP * index
        if column.name in bounds:
            return int(number_in(bounds[column.name], index, integer=True))
        return INTEGER_BASE + INTEGER_STEP * index
    if isinstance(type_, sa.Numeric):  # Float too
        return number_in(bounds.get(column.name, {}), index, integer=False)
    if isinstance(type_, sa.DateTime):
        return TIMESTAMPS[index % len(TIMESTAMPS)]
    if isinstance(type_, sa.Date):
        return TIMESTAMPS[0][:10]
    if isinstance(type_, sa.Time):
        return TIMESTAMPS[0][11:19]
    if isinstance(type_, sa.JSON):
        if index < len(JSON_TEXTS):
            return JSON_TEXTS[index]
        return None if column.nullable else "{}"
    if isinstance(type_, sa.LargeBinary):
        return bytes([0, index, 255])
    if isinstance(type_, sa.String):
        if column.name == special and index == 1:
            return NUL_TEXT
        if column.name == special and index == 2:  # the third row
            return Latin1(LATIN1_BYTES)
        return text_value(column, index, self_referencing)
    raise TypeError(f"release_rows has no value for {table.name}.{column.name} of type {type_!r}")


def max_key(db: sqlite3.Connection, table: Any) -> int:
    """The highest value of a table's single integer key (0 for none, or for another kind of key)."""
    import sqlalchemy as sa

    keys = list(table.primary_key.columns)
    if len(keys) != 1 or not isinstance(keys[0].type, sa.Integer):
        return 0
    highest = db.execute(f'SELECT max("{keys[0].name}") FROM "{table.name}"').fetchone()[0]  # noqa: S608 - model names
    return int(highest or 0)


def fill(path: str) -> dict[str, int]:
    """Insert ROWS_PER_TABLE rows into every model table of the SQLite file; return rows per table after."""
    sys.path.insert(0, os.getcwd())
    import app.models  # noqa: F401 - registers every model on Base.metadata
    from app.core.database import Base

    made: dict[str, list[dict[str, Any]]] = {}
    # The backend may be writing too: wait for its transactions rather than fail.
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        for table in Base.metadata.sorted_tables:
            choices, bounds = check_rules(table)
            context: dict[str, Any] = {
                "choices": choices,
                "bounds": bounds,
                "special": special_column(table, choices),
                "self_referencing": any(fk.column.table is table for fk in table.foreign_keys),
                # Integer keys after the rows the database already has (the release may have written some).
                "key_base": max_key(db, table),
            }
            made[table.name] = []
            # Keys first: a column referencing its own table's key needs this row's key.
            ordered = sorted(table.columns, key=lambda column: not column.primary_key)
            for index in range(ROWS_PER_TABLE):
                row: dict[str, Any] = {}
                context["row"] = row
                for column in ordered:
                    row[column.name] = value_for(column, index, made, context)
                names = list(row)
                marks = ", ".join("CAST(? AS TEXT)" if isinstance(row[name], Latin1) else "?" for name in names)
                columns = ", ".join(f'"{name}"' for name in names)
                db.execute(
                    f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks})',  # noqa: S608 - names from the models
                    [bytes(value) if isinstance(value, Latin1) else value for value in row.values()],
                )
                made[table.name].append(row)
        db.commit()
        return {
            table.name: db.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0]  # noqa: S608 - model names
            for table in Base.metadata.sorted_tables
        }
    finally:
        db.close()


def main() -> None:
    """Fill the database DATABASE_URL names and print the row counts."""
    url = os.environ.get("DATABASE_URL", DEFAULT_URL)
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise SystemExit(f"release_rows: DATABASE_URL must be a SQLite URL, not {url.split(':', 1)[0]}")
    print(json.dumps(fill(url[len(prefix) :])), flush=True)


if __name__ == "__main__":
    main()

"""Per-column conversion: a source value (raw from SQLite, or typed from PostgreSQL) as its target column takes it.

Every conversion is counted per column and kind for the report; the ones worth looking at (NUL removed,
Latin-1 read) are also remembered per row, so the report can name example rows.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .common import ConversionError

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

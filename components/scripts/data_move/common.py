"""What every part of the move shares: exit statuses, the release's names, errors and small helpers."""

from __future__ import annotations

import datetime
import os

PREFIX = "data-move"
ALEMBIC_INI = "alembic.ini"
VERSION_TABLE = "alembic_version"
#: Rows per read from the source and per INSERT batch (an executemany of dicts).
BATCH_ROWS = 2000
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 3


class MoveRefused(Exception):
    """The move is not done (exit 3); nothing was changed."""


class MoveFailed(Exception):
    """The move failed (exit 1); the target's transaction was rolled back."""


class ConversionError(ValueError):
    """A source value cannot be converted to its target column's type."""


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

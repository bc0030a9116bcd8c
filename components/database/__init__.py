"""The database mode, decided once (`database_mode`), and everything that follows from it.

- `SqliteMode` (`sqlite.py`): the SQLite file in the backend's data volume;
- `PostgresMode` (`postgres.py`): the stack's own PostgreSQL container (`postgres_server.py`);
- `ExternalMode` (`external.py`): a PostgreSQL server kept elsewhere, through its client side
  (`external_client.py`);
- `base.py`: what every mode answers (`DatabaseMode`) and what the two server modes share (`ServerMode`,
  which also owns the data move from SQLite).

A fourth mode is a `DatabaseKind` value in `components/settings/database.py`, a class beside these (on
`DatabaseMode` or `ServerMode`) and its entry in MODES below.
"""

from __future__ import annotations

from components.database.base import DatabaseMode
from components.database.external import ExternalMode
from components.database.postgres import PostgresMode
from components.database.sqlite import SqliteMode
from components.settings import DatabaseKind, Settings

MODES: dict[DatabaseKind, type[DatabaseMode]] = {mode.kind: mode for mode in (SqliteMode, PostgresMode, ExternalMode)}


def database_mode(settings: Settings) -> type[DatabaseMode]:
    """The one place the database mode is decided."""
    return MODES[settings.database]

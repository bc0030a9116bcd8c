"""What the target already holds: the marker of an earlier move, row counts, revisions, rows its chain seeds."""

from __future__ import annotations

from typing import Any

from .common import ALEMBIC_INI, VERSION_TABLE
from .report import Report

MARKER_TABLE = "argusai_data_move"


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

"""Schema gate: bring the database named by DATABASE_URL to the release's Alembic head, never losing data.

Run INSIDE the backend image with the working directory `/app` (where the release keeps `main.py`,
`alembic.ini`, `alembic/` and `app/`), as `python -m schema_gate` (components/scripts), before a new
backend version serves. It uses only the standard library and the release's own libraries (SQLAlchemy,
Alembic, the release's `app` package and migration scripts).

Environment it needs (the same values the backend gets):

- `DATABASE_URL`: the database to gate, e.g. `sqlite:////app/data/app.db` or
  `postgresql+psycopg://user:pw@host:5432/db`. Required here even though the release has a default
  (`sqlite:///./data/app.db`): the gate must never silently work on another database. It is never printed.
- `ENCRYPTION_KEY` (a Fernet key) and `JWT_SECRET_KEY`: no migration and no model uses them, but
  `app.core.config.settings` refuses to be created without them, and both `app.core.database` (which
  holds `Base`) and the release's `alembic/env.py` import it. `alembic/env.py` takes its URL from
  `settings.DATABASE_URL`, i.e. from the DATABASE_URL variable (which beats a `.env` file), so the URL
  in `alembic.ini` is never used; the gate sets it to the same value anyway.

Why each case does what it does (read from the release):

- The release's start-up (`main.py` lifespan) only ever runs `Base.metadata.create_all()`, never Alembic,
  so every database it has made so far has no `alembic_version` table. The Alembic chain
  (`alembic/versions`, one head) does reach head on SQLite from nothing, but it does not produce the model
  schema exactly: it never creates `notifications`, `hot_camera_activity` and `hot_entity_activity`
  (the models do), and migration 008 adds the FTS5 table `events_fts` with triggers, which the models do
  not define but `GET /events?search=` queries.
- Empty database (no tables, or only an empty `alembic_version`):
  on SQLite, `alembic upgrade head`, so the database gets everything the chain makes (the FTS5 table of
  008 included); then every table `Base.metadata` defines that the chain did not create is added with
  `create_all` (which only creates missing tables, as the release's start-up does). On PostgreSQL the
  chain cannot run: 008's `CREATE VIRTUAL TABLE ... USING fts5` is SQLite-only. So the model schema is
  created with `Base.metadata.create_all` in one transaction (PostgreSQL DDL is transactional) and then
  stamped `head`; a failure between the two leaves a complete but versionless schema, which the next run
  stamps (case below).
- Versioned database (`alembic_version` has a row): `alembic upgrade head`, a no-op at head. A revision
  this release does not know (a newer release wrote it) is refused before anything runs.
- Tables but no version (made by the release's own start-up): the revision the schema matches is
  stamped, then `upgrade head` runs (a no-op). The gate can tell one revision: when every table and
  column `Base.metadata` defines exists (more is allowed, e.g. the FTS5 tables), the schema is this
  release's model schema, i.e. head. Anything else (missing tables or columns) matches nothing the gate
  can determine: it exits non-zero naming what differs and never drops, recreates or alters a table.
- SQLite, after any of the above: head includes migration 008, so the database must have `events_fts`
  and its three triggers (`events_ai`, `events_au`, `events_ad`), which keep the index in step with
  `events`. A versionless database has neither (create_all never makes them); one the chain made has
  the table but no triggers: migration 058 rebuilds `events` with `batch_alter_table` (copy, drop,
  rename) and SQLite drops a table's triggers with it, so after 058 nothing indexes new events, and the
  old index may point at rowids of the dropped copy. The gate runs the release's own migration 008 on it
  (its statements are `IF NOT EXISTS`; an existing, stale index is first emptied with FTS5's
  `delete-all` so 008 refills it from `events`). Only FTS5 objects are created or refilled: the index
  is derived data, and no table the models define, and no row of one, changes.
- Afterwards, in every case, the gate checks that the version is head, every model table and column
  exists and (SQLite) the FTS5 table and triggers exist; anything else is a failure.

One line on stdout reports what was done, e.g.
`schema-gate: sqlite versionless -> stamped head + fts5 table of 008 (rev a1b2c3d4e5f6)`. Exit status 0 on
success; any failure ends the run with a message and a non-zero status.
"""

from __future__ import annotations

import os
import sys

REQUIRED_ENV = ("DATABASE_URL", "ENCRYPTION_KEY", "JWT_SECRET_KEY")
VERSION_TABLE = "alembic_version"
ALEMBIC_INI = "alembic.ini"
#: The release's SQLite-only migration: an FTS5 table over events.description, plus triggers.
FTS_REVISION = "008"
FTS_TABLE = "events_fts"
FTS_TRIGGERS = ("events_ai", "events_au", "events_ad")


class GateError(Exception):
    """The database cannot be gated safely; nothing was dropped or altered."""


def note(message: str) -> None:
    """Write a progress note to stderr (stdout carries only the summary line)."""
    print(f"schema-gate: {message}", file=sys.stderr, flush=True)


def check_environment() -> None:
    """Fail early, naming (never showing) the variables the release's settings need."""
    missing = [name for name in REQUIRED_ENV if not os.environ.get(name, "").strip()]
    if missing:
        raise GateError(
            f"missing environment variable(s) {', '.join(missing)}: DATABASE_URL names the database, and the "
            "release's settings (imported by app.core.database and alembic/env.py) require ENCRYPTION_KEY "
            "and JWT_SECRET_KEY"
        )
    if not os.path.isfile(ALEMBIC_INI):
        raise GateError(f"no {ALEMBIC_INI} in the working directory: run the gate with cwd /app in the image")
    # `python /dev/stdin` puts /dev, not the working directory, first on sys.path.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def schema_of(connection) -> dict[str, set[str]]:
    """Table name -> column names of the connection's default schema."""
    import sqlalchemy as sa

    inspector = sa.inspect(connection)
    return {table: {column["name"] for column in inspector.get_columns(table)} for table in inspector.get_table_names()}


def versions_of(connection, tables: dict[str, set[str]]) -> list[str]:
    """The revisions recorded in alembic_version (empty when the table is missing or empty)."""
    import sqlalchemy as sa

    if VERSION_TABLE not in tables:
        return []
    rows = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return sorted(str(row) for row in rows)


def model_gaps(metadata, tables: dict[str, set[str]]) -> tuple[list[str], dict[str, list[str]]]:
    """Model tables the database lacks, and per existing model table the columns it lacks."""
    missing_tables: list[str] = []
    missing_columns: dict[str, list[str]] = {}
    for name, table in sorted(metadata.tables.items()):
        if name not in tables:
            missing_tables.append(name)
            continue
        lacking = sorted(column.name for column in table.columns if column.name not in tables[name])
        if lacking:
            missing_columns[name] = lacking
    return missing_tables, missing_columns


def describe_gaps(missing_tables: list[str], missing_columns: dict[str, list[str]]) -> str:
    """A readable list of what the database lacks compared with the models."""
    parts = []
    if missing_tables:
        parts.append(f"missing tables: {', '.join(missing_tables)}")
    for table, columns in missing_columns.items():
        parts.append(f"table {table} lacks columns: {', '.join(columns)}")
    return "; ".join(parts)


def known_revision(script, revision: str) -> bool:
    """Whether the release's script directory has this revision."""
    from alembic.util import CommandError

    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def fts_state(connection) -> tuple[bool, list[str]]:
    """Whether SQLite has the FTS5 table of migration 008, and which of its triggers are missing."""
    import sqlalchemy as sa

    names = set(
        connection.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger') AND name IN :names").bindparams(
                sa.bindparam("names", expanding=True)
            ),
            {"names": [FTS_TABLE, *FTS_TRIGGERS]},
        ).scalars()
    )
    return FTS_TABLE in names, [trigger for trigger in FTS_TRIGGERS if trigger not in names]


def ensure_fts(engine, script) -> str:
    """Give a SQLite database at head the FTS5 table and triggers of migration 008; return what was done.

    Run with the release's own migration module. Only the FTS5 objects are created or refilled: the index
    is derived data (a copy of events.description); no table the models define is changed.
    """
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    with engine.connect() as connection:
        has_table, missing_triggers = fts_state(connection)
    if has_table and not missing_triggers:
        return ""
    revision = script.get_revision(FTS_REVISION)
    if revision is None:
        raise GateError(f"the release has no migration {FTS_REVISION}; cannot add {FTS_TABLE}")
    with engine.begin() as connection:
        if has_table:
            # Triggers gone (058 rebuilds `events` with batch_alter_table, and SQLite drops a table's
            # triggers with it): the index is stale, so empty it and let 008 refill it and re-add them.
            note(f"{FTS_TABLE} lacks its triggers {', '.join(missing_triggers)}; rebuilding it with migration 008")
            connection.exec_driver_sql("INSERT INTO events_fts(events_fts) VALUES ('delete-all')")
        with Operations.context(MigrationContext.configure(connection)):
            revision.module.upgrade()
    return f" + fts5 {'triggers' if has_table else 'table'} of {FTS_REVISION}"


def gate() -> str:
    """Gate the database and return the summary line."""
    check_environment()

    import app.models  # noqa: F401 - registers every model on Base.metadata, as alembic/env.py does
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from app.core.config import settings
    from app.core.database import Base
    from sqlalchemy.pool import NullPool

    url = settings.DATABASE_URL
    if url != os.environ["DATABASE_URL"]:
        raise GateError("the release's settings resolve DATABASE_URL differently from the environment")
    dialect = sa.engine.make_url(url).get_backend_name()
    if dialect not in ("sqlite", "postgresql"):
        raise GateError(f"unsupported database dialect {dialect!r} (the release supports sqlite and postgresql)")

    config = Config(ALEMBIC_INI)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    script = ScriptDirectory.from_config(config)
    heads = sorted(script.get_heads())
    head_text = ", ".join(heads)
    metadata = Base.metadata

    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            tables = schema_of(connection)
            current = versions_of(connection, tables)

        if current:
            unknown = [rev for rev in current if not known_revision(script, rev)]
            if unknown:
                raise GateError(
                    f"the database is at revision {', '.join(unknown)}, which this release does not know "
                    "(written by a newer release?); refusing to touch it"
                )
            case = "versioned"
            command.upgrade(config, "heads")
            action = "already at head" if current == heads else f"upgraded {', '.join(current)} -> head"
        elif not (set(tables) - {VERSION_TABLE}):
            case = "empty"
            if dialect == "sqlite":
                command.upgrade(config, "heads")
                action = "upgrade head"
                with engine.connect() as connection:
                    missing_tables, missing_columns = model_gaps(metadata, schema_of(connection))
                if missing_columns:
                    raise GateError(
                        "the migration chain's head disagrees with the models: " + describe_gaps([], missing_columns)
                    )
                if missing_tables:
                    note(f"the migration chain does not create {', '.join(missing_tables)}; creating them")
                    with engine.begin() as connection:
                        metadata.create_all(connection, tables=[metadata.tables[name] for name in missing_tables])
                    action += f" + create_all of {len(missing_tables)} tables the chain lacks"
            else:
                with engine.begin() as connection:
                    metadata.create_all(connection)
                command.stamp(config, "heads")
                action = "create_all + stamped head"
        else:
            case = "versionless"
            missing_tables, missing_columns = model_gaps(metadata, tables)
            if missing_tables or missing_columns:
                raise GateError(
                    "the database has tables but no Alembic version, and its schema is not this release's "
                    f"model schema ({describe_gaps(missing_tables, missing_columns)}); it matches no revision "
                    "the gate can determine, so nothing was changed"
                )
            extra = sorted(set(tables) - set(metadata.tables) - {VERSION_TABLE})
            if extra:
                note(f"tables the models do not define are kept as they are: {', '.join(extra)}")
            command.stamp(config, "heads")
            command.upgrade(config, "heads")
            action = "stamped head"

        if dialect == "sqlite":
            action += ensure_fts(engine, script)

        with engine.connect() as connection:
            tables = schema_of(connection)
            final = versions_of(connection, tables)
        missing_tables, missing_columns = model_gaps(metadata, tables)
        if final != heads:
            raise GateError(f"after the gate the database is at {final or 'no revision'}, not head {head_text}")
        if missing_tables or missing_columns:
            raise GateError(f"after the gate the schema lacks: {describe_gaps(missing_tables, missing_columns)}")
        if dialect == "sqlite":
            with engine.connect() as connection:
                has_table, missing_triggers = fts_state(connection)
            if not has_table or missing_triggers:
                raise GateError(f"after the gate the SQLite database lacks the FTS5 objects of {FTS_REVISION}")
    finally:
        engine.dispose()
    return f"schema-gate: {dialect} {case} -> {action} (rev {head_text})"


def main() -> int:
    """Run the gate; print the summary line, or the reason it refused, and return the exit status."""
    try:
        summary = gate()
    except GateError as exc:
        print(f"schema-gate: FAILED: {exc}", file=sys.stderr, flush=True)
        return 2
    print(summary, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Data move: copy every row of the release's model tables from one database to another one at head.

Run INSIDE the backend image with the working directory `/app`, as `python -m data_move` with the
directory holding this package on PYTHONPATH (e.g. `PYTHONPATH=/opt/argusai`; `-m` puts the working
directory first on sys.path, so the release's `app` package is importable), while the new database is
empty and already at the release's Alembic head (made by schema_gate.py), typically SQLite ->
PostgreSQL, and with the same code PostgreSQL -> a new SQLite file (the way back). It uses only the
standard library and the release's own libraries (SQLAlchemy, Alembic, psycopg, the `app` package);
every table, column and type comes from the release's `Base.metadata`, never from SQL written per
table.

Modules, each importing only those before it: `common` (exit statuses, errors, helpers), `report`
(the lines printed and MOVE_REPORT), `convert` (per-column value conversion), `read` (the SQLite and
PostgreSQL sources), `plan` (per-table plans, row conversion and order, the fingerprint), `target`
(what the target already holds: marker, counts, revisions, seeded rows), `copy` (the target's one
transaction: batches by COPY or INSERT, sequences, the marker, the report's lines) and `__main__`
(environment, lock, hold and release, exit status).

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

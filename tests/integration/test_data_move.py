"""The data move (components/scripts/data_move/) on the real ArgusAI backend image and a real engine.

No Pulumi stack: throwaway containers of the release's image (cwd /app) run the gate as
`python -m schema_gate` and the move as files: its package put in the container under
/opt/argusai/data_move and run as `python -m data_move` with PYTHONPATH=/opt/argusai; on a labelled
network with a PostgreSQL container (alias `postgres`) and a data volume at /app/data. The SQLite file
is gated (schema_gate.py, as uid 1000, the image's user) and filled with rows in every model table
(testkit/release_rows.py); each PostgreSQL target is a database cloned from one the gate made
(`CREATE DATABASE ... TEMPLATE`), owned by a role without superuser rights. The move runs as root, as
the program's step does.

- SQLite -> PostgreSQL: every model table's count equal; every value read back through the release's
  models equals the source's (booleans are bools, the +02:00 timestamp the same instant, JSON equal, NUL
  removed and Latin-1 read as "café", both reported); the SQLite file byte-for-byte unchanged; a backup
  and the report file written; sequences past the highest id (a new ai_usage row gets an id);
- a second run with MOVE_HOLD=1 reports "already moved", copies nothing and holds the write lock: another
  connection's write fails with "database is locked", its read succeeds;
- refusals, nothing changed: PostgreSQL already holding other data, a revision mismatch; a missing SQLite
  file is "nothing to move";
- a value longer than its VARCHAR(n) in the last table copied fails, naming the table and the row, and
  leaves every model table of PostgreSQL empty;
- PostgreSQL -> a new SQLite file (gated first): the same counts, and events_fts filled by the triggers.

Every Docker object carries the label `argusai.stack=move<hex>` and is removed afterwards.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from components.naming import LABEL_STACK
from components.scripts import DATA_MOVE, IN_CONTAINER, SCHEMA_GATE
from testkit import release_rows
from testkit.archive import PUBLIC_MODE, tar_of
from testkit.cleanup import remove_stack
from testkit.images.recipes import ARGUSAI_BACKEND
from testkit.oneoff import Finished, run_once

from .conftest import POSTGRES_IMAGE, record_result, require_release_image, wait_for

pytestmark = [pytest.mark.grow, pytest.mark.argusai]

ROOT = Path(__file__).resolve().parent.parent.parent
#: Where the scripts go in their container (on PYTHONPATH; the working directory stays /app, so the
#: release's `app` package is importable too), as the program delivers them (components/scripts).
SCRIPTS_DIR = IN_CONTAINER
MOVE_FILES = DATA_MOVE.contents()
MOVE_COMMAND = DATA_MOVE.argv
RELEASE_IMAGE = ARGUSAI_BACKEND.tag
HEAD = "a1b2c3d4e5f6"
OLDER_REVISION = "059"
DATA = "/app/data"
SQLITE_FILE = f"{DATA}/app.db"
SQLITE_URL = f"sqlite:///{SQLITE_FILE}"
BACKUP_DIR = f"{DATA}/backups"
REPORT_FILE = f"{DATA}/reports/first-move.report"
APP_USER = "1000"
ROOT_USER = "0"
PG_ALIAS = "postgres"
APP_ROLE = "argusai"
TEMPLATE_DB = "gated"
MARKER_TABLE = "argusai_data_move"
FTS_TABLE = "events_fts"
#: The VARCHAR(n) column the too-long test overfills: the last table of sorted_tables, so every table
#: before it is copied (and then rolled back) before PostgreSQL refuses.
LONG_TABLE, LONG_COLUMN = "webhook_logs", "url"
PG_START_SECONDS = 120
HOLD_SECONDS = 120
WRITER_BUSY_SECONDS = 1.0
#: The instant of release_rows' "+02:00" timestamp.
OFFSET_INSTANT = datetime.datetime(2024, 5, 1, 10, 30, tzinfo=datetime.UTC)
LAST_LINE = re.compile(
    r"^data-move: moved (?P<rows>\d+) rows in (?P<seconds>[\d.]+) s from (?P<source>\S+) to (?P<target>\S+) "
    rf"\(rev {HEAD}\)$"
)
RATE = re.compile(r"^data-move: copied \d+ rows in [\d.]+ s \((?P<rate>\d+) rows/s\)$", re.MULTILINE)
PAUSE = re.compile(r"^data-move: writes to \S+ paused for (?P<seconds>[\d.]+) s", re.MULTILINE)
#: Rows per table of a PostgreSQL database (every base table of `public`), counted in SQL.
PG_COUNTS = (
    "SELECT table_name || '=' || (xpath('/row/c/text()', query_to_xml("
    "format('SELECT count(*) AS c FROM public.%I', table_name), false, true, '')))[1]::text "
    "FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
)

#: In the release image (cwd /app): the model schema, the SQLite source's raw rows, the rows read back
#: through the release's models from PostgreSQL, sequences, the source's SHA-256, the report and backups.
PROBE = r"""
import base64, datetime, decimal, enum, hashlib, json, os, sqlite3, sys
sys.path.insert(0, os.getcwd())
import sqlalchemy as sa
from sqlalchemy.orm import Session
import app.models
from app.core.database import Base

def tag(value):
    if isinstance(value, enum.Enum):  # before str: the release's UserRole is a str too
        return {"enum": value.value}
    if value is None or isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, datetime.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, (bytes, memoryview)):
        return {"bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (dict, list)):
        return {"json": value}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    return {"other": repr(value)}

source = os.environ["SOURCE_FILE"]
out = {"sha256": hashlib.sha256(open(source, "rb").read()).hexdigest(), "models": {}, "sqlite": {}, "pg": {}}
for table in Base.metadata.sorted_tables:
    out["models"][table.name] = {
        "pk": [c.name for c in table.primary_key.columns],
        "columns": {c.name: [type(c.type).__name__, bool(getattr(c.type, "timezone", False))] for c in table.columns},
    }
db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
db.text_factory = bytes
for table in Base.metadata.sorted_tables:
    names = ", ".join(f'"{c.name}"' for c in table.columns)
    out["sqlite"][table.name] = [
        {c.name: tag(v) for c, v in zip(table.columns, row)}
        for row in db.execute(f'SELECT {names} FROM "{table.name}"')
    ]
db.close()
engine = sa.create_engine(os.environ["DATABASE_URL"])
with Session(engine) as session:
    for mapper in Base.registry.mappers:
        attrs = [(prop.key, prop.columns[0].name) for prop in mapper.column_attrs]
        out["pg"][mapper.local_table.name] = [
            {column: tag(getattr(obj, key)) for key, column in attrs} for obj in session.query(mapper.class_).all()
        ]
    sequences = {}
    for table in Base.metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        if len(keys) == 1 and isinstance(keys[0].type, sa.Integer):
            query = sa.text("SELECT pg_get_serial_sequence(:t, :c)")
            seq = session.execute(query, {"t": table.name, "c": keys[0].name}).scalar()
            if seq:
                highest = session.execute(sa.select(sa.func.max(keys[0]))).scalar()
                following = session.execute(sa.text("SELECT nextval(:s)"), {"s": seq}).scalar()
                sequences[table.name] = [highest, following]
    out["sequences"] = sequences
    usage = app.models.AIUsage(timestamp=datetime.datetime.now(datetime.timezone.utc), provider="probe", success=True)
    session.add(usage)
    session.flush()
    out["new_ai_usage_id"] = usage.id
    session.rollback()
report = os.environ.get("REPORT_FILE")
out["report"] = open(report, encoding="utf-8").read() if report and os.path.exists(report) else None
backups = {}
directory = os.environ.get("BACKUP_DIR")
if directory and os.path.isdir(directory):
    for name in sorted(os.listdir(directory)):
        copy = sqlite3.connect(f"file:{os.path.join(directory, name)}?mode=ro", uri=True)
        tables = Base.metadata.sorted_tables
        backups[name] = {t.name: copy.execute(f'SELECT count(*) FROM "{t.name}"').fetchone()[0] for t in tables}
        copy.close()
out["backups"] = backups
print(json.dumps(out))
"""

#: Plain Python (no release code) on the data volume: SHA-256 of files, whether files exist, row counts
#: of every table of a SQLite file, and whether its write lock can be taken now (then released).
INSPECT = r"""
import hashlib, json, os, sqlite3, sys
path = sys.argv[1]
out = {"sha256": hashlib.sha256(open(path, "rb").read()).hexdigest() if os.path.exists(path) else None}
out["exists"] = {p: os.path.exists(p) for p in sys.argv[2:]}
db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
out["counts"] = {n: db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
out["fts_match"] = None
if "events_fts" in names:
    out["fts_match"] = db.execute("SELECT count(*) FROM events_fts WHERE events_fts MATCH 'nulhere'").fetchone()[0]
db.close()
lock = sqlite3.connect(path, timeout=1, isolation_level=None)
try:
    lock.execute("BEGIN IMMEDIATE")
    lock.execute("ROLLBACK")
    out["lock"] = "free"
except sqlite3.OperationalError as exc:
    out["lock"] = str(exc)
lock.close()
print(json.dumps(out))
"""

#: Another connection while the move holds the lock: a read, then a write with a short busy timeout.
WRITER = r"""
import json, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=float(sys.argv[2]))
out = {"read": db.execute("SELECT count(*) FROM system_settings").fetchone()[0]}
start = time.monotonic()
try:
    db.execute("INSERT INTO system_settings (key, value) VALUES ('hold-probe', 'must not land')")
    db.commit()
    out["write"] = "written"
except sqlite3.OperationalError as exc:
    out["write"] = str(exc)
out["waited"] = time.monotonic() - start
print(json.dumps(out))
"""

#: A copy of the SQLite file (backup API) with one value longer than its VARCHAR(n).
OVERFILL = r"""
import sqlite3, sys
source, target, table, column, length = sys.argv[1:6]
src = sqlite3.connect(source)
dst = sqlite3.connect(target)
src.backup(dst)
src.close()
sql = f'UPDATE "{table}" SET "{column}" = ? WHERE rowid = (SELECT max(rowid) FROM "{table}")'
cur = dst.execute(sql, ("x" * (int(length) + 1),))
assert cur.rowcount == 1
dst.commit()
print(dst.execute(f'SELECT id FROM "{table}" WHERE length("{column}") > ?', (int(length),)).fetchone()[0])
"""


def fernet_key() -> str:
    """A fresh Fernet key, as the release's settings demand."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@dataclass
class World:
    """The Docker objects shared by this file's tests, and helpers to use them."""

    client: docker.DockerClient
    name: str
    network: str
    volume: str
    postgres: Any
    admin: str
    admin_password: str
    app_password: str
    keys: dict[str, str]
    filled: dict[str, int]
    sha_before: str = ""

    @property
    def labels(self) -> dict[str, str]:
        """The stack label of every object made here."""
        return {LABEL_STACK: self.name}

    def pg_url(self, database: str) -> str:
        """The application role's URL of a database on the test server."""
        return f"postgresql+psycopg://{APP_ROLE}:{self.app_password}@{PG_ALIAS}:5432/{database}"

    def run(
        self,
        command: list[str],
        env: dict[str, str],
        *,
        user: str = APP_USER,
        network: bool = True,
        files: Mapping[str, bytes] | None = None,
    ) -> Finished:
        """A throwaway container of the release's image (cwd /app, the data volume at /app/data, `files` put in)."""
        return run_once(
            self.client,
            RELEASE_IMAGE,
            entrypoint=command,
            working_dir="/app",
            environment=env,
            volumes={self.volume: {"bind": DATA, "mode": "rw"}},
            network=self.network if network else None,
            labels=self.labels,
            user=user,
            files=files,
        )

    def release_env(self, url: str) -> dict[str, str]:
        """What the gate and the move get besides their own variables."""
        return {"DATABASE_URL": url, **self.keys, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}

    def gate(self, url: str) -> Finished:
        """The schema gate as the program runs it (as the image's user): its file put in, `python -m`."""
        env = {**self.release_env(url), "PYTHONPATH": SCRIPTS_DIR}
        return self.run(SCHEMA_GATE.argv, env, files=SCHEMA_GATE.contents())

    def move(self, target: str, source: str = SQLITE_URL, *, user: str = ROOT_USER, **extra: str) -> Finished:
        """The data move as the program runs it: its files put in, `python -m data_move`, as root."""
        env = {**self.release_env(target), "MOVE_SOURCE_URL": source, "PYTHONPATH": SCRIPTS_DIR, **extra}
        return self.run(MOVE_COMMAND, env, user=user, files=MOVE_FILES)

    def inspect(self, path: str, *exists: str) -> dict[str, Any]:
        """SHA-256, row counts and lock state of a SQLite file on the volume (plain Python, no network)."""
        done = self.run(["python", "-c", INSPECT, path, *exists], {}, network=False)
        assert done.code == 0, done.output[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def psql(self, database: str, sql: str) -> str:
        """Run SQL as the server's superuser (test set-up only); unaligned output."""
        result = self.postgres.exec_run(
            ["psql", "-h", "127.0.0.1", "-U", self.admin, "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            environment={"PGPASSWORD": self.admin_password},
        )
        output = result.output.decode(errors="replace")
        assert result.exit_code == 0, f"psql failed: {output}"
        return output

    def clone(self, database: str) -> str:
        """A new database from the gated template: the release's schema at head, no rows."""
        self.psql("postgres", f"CREATE DATABASE {database} OWNER {APP_ROLE} TEMPLATE {TEMPLATE_DB}")
        return database

    def pg_counts(self, database: str) -> dict[str, int]:
        """Rows per table of a database."""
        lines = [line for line in self.psql(database, PG_COUNTS).splitlines() if "=" in line]
        return {name: int(count) for name, count in (line.split("=", 1) for line in lines)}


def start_postgres(client: docker.DockerClient, name: str, network: str, admin: str, password: str) -> Any:
    """The PostgreSQL container (alias `postgres` on the network); waited for later."""
    return client.containers.run(
        POSTGRES_IMAGE,
        name=f"{name}-postgres",
        environment={"POSTGRES_USER": admin, "POSTGRES_PASSWORD": password, "POSTGRES_DB": "postgres"},
        network=network,
        labels={LABEL_STACK: name},
        detach=True,
    )


@pytest.fixture(scope="module")
def world(engine: docker.DockerClient, images: dict[str, str]) -> Iterator[World]:
    """Network, PostgreSQL (a gated template database), a data volume with a gated, filled SQLite file."""
    require_release_image(engine)
    name = f"move{secrets.token_hex(3)}"
    labels = {LABEL_STACK: name}
    try:
        network = engine.networks.create(f"{name}-net", driver="bridge", labels=labels).name
        volume = engine.volumes.create(name=f"{name}-data", labels=labels).name
        admin, admin_password = "pgadmin", secrets.token_hex(12)
        postgres = start_postgres(engine, name, network, admin, admin_password)
        # The alias the URLs use.
        engine.networks.get(network).disconnect(postgres)
        engine.networks.get(network).connect(postgres, aliases=[PG_ALIAS])
        world = World(
            client=engine,
            name=name,
            network=network,
            volume=volume,
            postgres=postgres,
            admin=admin,
            admin_password=admin_password,
            app_password=secrets.token_hex(12),
            keys={"ENCRYPTION_KEY": fernet_key(), "JWT_SECRET_KEY": secrets.token_hex(32)},
            filled={},
        )
        gated = world.gate(SQLITE_URL)
        assert gated.code == 0, gated.output[-4000:]
        filled = world.run(["python", "-c", release_rows.SCRIPT], world.release_env(SQLITE_URL), network=False)
        assert filled.code == 0, filled.output[-4000:]
        world.filled = release_rows.parse_counts(filled.stdout)
        assert world.filled, filled.output[-3000:]
        assert all(world.filled.values()), f"model tables without rows: {world.filled}"

        def ready() -> bool:
            probe = ["pg_isready", "-h", "127.0.0.1", "-U", admin, "-d", "postgres"]
            return postgres.exec_run(probe).exit_code == 0

        wait_for("PostgreSQL", ready, PG_START_SECONDS)
        # The application's role owns its databases but is no superuser: the move must not need more.
        world.psql("postgres", f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER PASSWORD '{world.app_password}'")
        world.psql("postgres", f"CREATE DATABASE {TEMPLATE_DB} OWNER {APP_ROLE}")
        gated_pg = world.gate(world.pg_url(TEMPLATE_DB))
        assert gated_pg.code == 0, gated_pg.output[-4000:]
        world.sha_before = world.inspect(SQLITE_FILE)["sha256"]
        yield world
    finally:
        remove_stack(engine, name)


@dataclass(frozen=True)
class FirstMove:
    """The first SQLite -> PostgreSQL move."""

    database: str
    finished: Finished


@pytest.fixture(scope="module")
def moved(world: World) -> FirstMove:
    """The first move, into a fresh database, with a backup and a report file."""
    database = world.clone("moved")
    finished = world.move(world.pg_url(database), MOVE_BACKUP_DIR=BACKUP_DIR, MOVE_REPORT=REPORT_FILE)
    assert finished.code == 0, finished.output[-6000:]
    return FirstMove(database, finished)


def model_counts(counts: dict[str, int], models: dict[str, int]) -> dict[str, int]:
    """Only the model tables of a counts dict (every model table must be there)."""
    missing = sorted(set(models) - set(counts))
    assert not missing, f"model tables missing: {missing}"
    return {name: counts[name] for name in models}


def raw_text(raw: Any) -> str:
    """A value as the SQLite probe saw it (bytes as base64), as text: UTF-8, else Latin-1."""
    if isinstance(raw, dict):
        data = base64.b64decode(raw["bytes"])
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    return str(raw)


def expected_value(type_name: str, timezone: bool, raw: Any) -> Any:
    """What PostgreSQL must hold for a raw SQLite value, as the probe tags it (an independent reading)."""
    if raw is None:
        return None
    if type_name == "Boolean":
        return {"bool": bool(raw)}
    if type_name == "Integer":
        return int(raw)
    if type_name == "Float":
        return float(raw)
    if type_name == "JSON":
        parsed = json.loads(raw_text(raw))
        return None if parsed is None else {"json": parsed}
    if type_name == "DateTime":
        moment = datetime.datetime.fromisoformat(raw_text(raw))
        if timezone:
            return moment.replace(tzinfo=datetime.UTC) if moment.tzinfo is None else moment.astimezone(datetime.UTC)
        return moment.astimezone(datetime.UTC).replace(tzinfo=None) if moment.tzinfo else moment
    text = raw_text(raw).replace("\x00", "")
    return {"enum": text} if type_name == "Enum" else text


def same(expected: Any, actual: Any) -> bool:
    """Equal values; timestamps compared as instants."""
    if isinstance(expected, datetime.datetime):
        return isinstance(actual, dict) and datetime.datetime.fromisoformat(actual["datetime"]) == expected
    return expected == actual


def key_of(row: dict[str, Any], pk: list[str]) -> tuple[str, ...]:
    """A row's primary key as text."""
    return tuple(raw_text(row[name]) for name in pk)


def test_sqlite_to_postgresql_copies_every_row_and_value(world: World, moved: FirstMove) -> None:
    """Counts, values through the release's models, the source untouched, backup, report, sequences."""
    out = moved.finished.stdout
    lines = out.strip().splitlines()
    last = LAST_LINE.match(lines[-1])
    assert last, f"unexpected last line: {lines[-1]}"
    total = sum(world.filled.values())
    assert int(last["rows"]) == total
    assert last["source"] == SQLITE_URL
    assert last["target"] == f"postgresql+psycopg://{APP_ROLE}:***@{PG_ALIAS}:5432/{moved.database}"
    assert world.app_password not in moved.finished.output
    for table, count in world.filled.items():
        assert re.search(rf"^data-move: table {table}: {count} rows\b", out, re.MULTILINE), f"no line for {table}"
    backup_line = re.search(
        rf"^data-move: backup of the source written: ({BACKUP_DIR}/pre-move-\d{{8}}T\d{{6}}Z\.sqlite3)", out, re.M
    )
    assert backup_line, out[-3000:]
    assert "NUL removed (PostgreSQL text cannot hold NUL)" in out
    assert "Latin-1 read (not valid UTF-8)" in out

    pg = world.pg_counts(moved.database)
    assert model_counts(pg, world.filled) == world.filled
    assert pg[MARKER_TABLE] == 1

    probe_env = {
        **world.release_env(world.pg_url(moved.database)),
        "SOURCE_FILE": SQLITE_FILE,
        "REPORT_FILE": REPORT_FILE,
        "BACKUP_DIR": BACKUP_DIR,
    }
    probed = world.run(["python", "-c", PROBE], probe_env)
    assert probed.code == 0, probed.output[-4000:]
    probe = json.loads(probed.stdout.strip().splitlines()[-1])

    assert probe["sha256"] == world.sha_before, "the SQLite file changed"
    assert probe["report"] is not None, "no report file"
    assert probe["report"].strip().splitlines() == lines, "the report file differs from what was printed"
    assert list(probe["backups"]) == [os.path.basename(backup_line[1])]
    assert model_counts(probe["backups"][os.path.basename(backup_line[1])], world.filled) == world.filled

    mismatches: list[str] = []
    seen = {"offset": 0, "nul": 0, "latin1": 0, "bool": 0}
    for table, model in probe["models"].items():
        pk = model["pk"]
        source_rows = {key_of(row, pk): row for row in probe["sqlite"][table]}
        pg_rows = {key_of(row, pk): row for row in probe["pg"][table]}
        assert set(source_rows) == set(pg_rows), f"{table}: keys differ"
        for key, row in source_rows.items():
            for column, (type_name, timezone) in model["columns"].items():
                raw, actual = row[column], pg_rows[key][column]
                expected = expected_value(type_name, timezone, raw)
                if not same(expected, actual):
                    mismatches.append(f"{table} {key} {column}: source {raw!r} -> {actual!r}, expected {expected!r}")
                if type_name == "Boolean":
                    seen["bool"] += isinstance(actual, dict) and isinstance(actual.get("bool"), bool)
                if raw is None or not isinstance(raw, dict):
                    continue
                data = base64.b64decode(raw["bytes"])
                if data == release_rows.OFFSET_TIMESTAMP.encode() and timezone:
                    seen["offset"] += 1
                    assert datetime.datetime.fromisoformat(actual["datetime"]) == OFFSET_INSTANT
                if data == release_rows.NUL_TEXT.encode():
                    seen["nul"] += 1
                    assert actual == release_rows.NUL_CLEANED
                if data == release_rows.LATIN1_BYTES:
                    seen["latin1"] += 1
                    assert actual == release_rows.LATIN1_TEXT
    assert not mismatches, "\n".join(mismatches[:30])
    assert all(seen.values()), f"release_rows' odd values not all met: {seen}"

    for table, (highest, following) in probe["sequences"].items():
        assert following > (highest or 0), f"{table}: sequence at {following}, highest id {highest}"
    assert probe["sequences"], "no integer key has a sequence"
    assert probe["new_ai_usage_id"] > probe["sequences"]["ai_usage"][0]

    rate = RATE.search(out)
    pause = PAUSE.search(out)
    assert rate, out[-3000:]
    assert pause, out[-3000:]
    record_result(
        f"data move sqlite -> postgresql: {total} rows in {last['seconds']} s ({rate['rate']} rows/s), "
        f"writes paused {pause['seconds']} s, container {moved.finished.seconds:.1f}s"
    )


def test_second_run_holds_the_lock_and_copies_nothing(world: World, moved: FirstMove) -> None:
    """MOVE_HOLD=1 after "already moved": another connection reads but cannot write; the file stays as it was."""
    done_marker = "/tmp/data-move.done"  # noqa: S108 - inside the move's own container
    env = {
        **world.release_env(world.pg_url(moved.database)),
        "MOVE_SOURCE_URL": SQLITE_URL,
        "PYTHONPATH": SCRIPTS_DIR,
        "MOVE_HOLD": "1",
        "STEP_DONE": done_marker,
    }
    before = world.pg_counts(moved.database)
    holder = world.client.containers.create(
        RELEASE_IMAGE,
        entrypoint=MOVE_COMMAND,
        working_dir="/app",
        environment=env,
        volumes={world.volume: {"bind": DATA, "mode": "rw"}},
        network=world.network,
        labels=world.labels,
        user=ROOT_USER,
    )
    try:
        holder.put_archive("/", tar_of({path: (content, PUBLIC_MODE) for path, content in MOVE_FILES.items()}))
        holder.start()

        def holding() -> bool:
            holder.reload()
            if holder.status not in ("created", "running"):
                pytest.fail(f"the move exited ({holder.status}):\n{holder.logs().decode(errors='replace')[-4000:]}")
            return holder.exec_run(["test", "-f", done_marker]).exit_code == 0

        wait_for("the move's STEP_DONE", holding, HOLD_SECONDS)
        writer = world.run(["python", "-c", WRITER, SQLITE_FILE, str(WRITER_BUSY_SECONDS)], {}, network=False)
        assert writer.code == 0, writer.output[-3000:]
        result = json.loads(writer.stdout.strip().splitlines()[-1])
        logs = holder.logs().decode(errors="replace")
        holder.reload()
        assert holder.status == "running", "the move stopped holding the lock"
    finally:
        holder.remove(force=True)
    assert result["write"] == "database is locked", result
    assert result["read"] == world.filled["system_settings"]
    assert result["waited"] >= WRITER_BUSY_SECONDS * 0.9
    assert re.search(r"^data-move: already moved at \S+ \(\d+ rows\); nothing copied$", logs, re.MULTILINE), logs
    assert "MOVE_HOLD=1: the write lock" in logs
    assert world.pg_counts(moved.database) == before, "a second run changed PostgreSQL"
    after = world.inspect(SQLITE_FILE)
    assert after["sha256"] == world.sha_before, "the SQLite file changed"
    assert after["lock"] == "free", "the lock outlived the move's container"
    pause = PAUSE.search(logs)
    record_result(
        f"data move, second run with MOVE_HOLD: already moved, writes paused {pause['seconds'] if pause else '?'} s "
        f"before the hold; a write during the hold failed after {result['waited']:.2f} s"
    )


def test_target_with_other_data_is_refused_and_unchanged(world: World) -> None:
    """A PostgreSQL database with rows and no marker: exit 3, nothing changed."""
    database = world.clone("held")
    world.psql(database, "INSERT INTO system_settings (key, value) VALUES ('other', 'data already here')")
    before = world.pg_counts(database)
    finished = world.move(world.pg_url(database))
    assert finished.code == 3, finished.output[-4000:]
    assert "PostgreSQL already holds data (system_settings: 1)" in finished.stderr
    assert "nothing was changed" in finished.stderr
    assert "rename app.db" in finished.stderr
    assert world.pg_counts(database) == before
    assert MARKER_TABLE not in before
    assert world.app_password not in finished.output


def test_value_too_long_fails_naming_the_row_and_leaves_nothing(world: World) -> None:
    """A VARCHAR(n) overflow in the last table copied: exit 1 naming table and row; every table empty after."""
    length = int(
        world.psql(
            TEMPLATE_DB,
            "SELECT character_maximum_length FROM information_schema.columns "  # noqa: S608 - constants
            f"WHERE table_name = '{LONG_TABLE}' AND column_name = '{LONG_COLUMN}'",
        ).strip()
    )
    long_file = f"{DATA}/too-long.db"
    made = world.run(
        ["python", "-c", OVERFILL, SQLITE_FILE, long_file, LONG_TABLE, LONG_COLUMN, str(length)], {}, network=False
    )
    assert made.code == 0, made.output[-3000:]
    row_id = made.stdout.strip().splitlines()[-1]
    database = world.clone("toolong")
    finished = world.move(world.pg_url(database), f"sqlite:///{long_file}")
    assert finished.code == 1, finished.output[-4000:]
    failure = finished.stderr.strip().splitlines()[-1]
    assert failure.startswith("data-move: FAILED: "), failure
    assert f"table {LONG_TABLE}" in failure, failure
    assert f"id={row_id}" in failure, failure
    assert f"value too long for type character varying({length})" in failure, failure
    counts = world.pg_counts(database)
    assert model_counts(counts, world.filled) == dict.fromkeys(world.filled, 0)
    assert MARKER_TABLE not in counts


def test_revision_mismatch_is_refused_and_missing_file_is_nothing_to_move(world: World) -> None:
    """Source at head, target elsewhere: exit 3 naming both (report written); no SQLite file: exit 0, STEP_DONE."""
    database = world.clone("oldrev")
    world.psql(database, f"UPDATE alembic_version SET version_num = '{OLDER_REVISION}'")  # noqa: S608 - a constant
    refused_report = f"{DATA}/reports/refused.report"
    finished = world.move(world.pg_url(database), MOVE_REPORT=refused_report)
    assert finished.code == 3, finished.output[-4000:]
    assert f"source is at revision {HEAD} but the target at {OLDER_REVISION}" in finished.stderr
    assert model_counts(world.pg_counts(database), world.filled) == dict.fromkeys(world.filled, 0)

    missing, done = f"{DATA}/never-made.db", f"{DATA}/never-made.done"
    nothing = world.move(world.pg_url(database), f"sqlite:///{missing}", MOVE_HOLD="1", STEP_DONE=done)
    assert nothing.code == 0, nothing.output[-4000:]
    assert nothing.stdout.strip().splitlines()[-1] == f"data-move: no SQLite database at {missing}; nothing to move"
    exists = world.inspect(SQLITE_FILE, missing, done, refused_report)["exists"]
    assert exists == {missing: False, done: True, refused_report: True}, "STEP_DONE or the failure's report missing"


def test_postgresql_back_to_a_new_sqlite_file(world: World, moved: FirstMove) -> None:
    """The way back: a gated, new SQLite file gets PostgreSQL's rows, and the FTS5 triggers index events."""
    back_file = f"{DATA}/back.db"
    back_url = f"sqlite:///{back_file}"
    gated = world.gate(back_url)
    assert gated.code == 0, gated.output[-4000:]
    pg = model_counts(world.pg_counts(moved.database), world.filled)
    finished = world.move(back_url, world.pg_url(moved.database), user=APP_USER)
    assert finished.code == 0, finished.output[-6000:]
    last = LAST_LINE.match(finished.stdout.strip().splitlines()[-1])
    assert last, finished.stdout[-3000:]
    assert int(last["rows"]) == sum(pg.values())
    assert last["source"] == f"postgresql+psycopg://{APP_ROLE}:***@{PG_ALIAS}:5432/{moved.database}"
    # The gate's migration 005 seeds system_settings; those rows are no data and are replaced.
    assert "the target held only rows its migration chain seeds (system_settings: 4)" in finished.stdout
    back = world.inspect(back_file)
    assert model_counts(back["counts"], world.filled) == pg
    # events_fts reads its text from `events`; its docsize shadow table has one row per indexed event.
    assert back["counts"][f"{FTS_TABLE}_docsize"] == pg["events"], "the FTS5 triggers did not index the events"
    assert back["fts_match"] == 1, "the NUL-free description is not found by full-text search"
    record_result(f"data move postgresql -> sqlite: {last['rows']} rows in {last['seconds']} s")

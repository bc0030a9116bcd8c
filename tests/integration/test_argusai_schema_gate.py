"""The schema gate (components/scripts/schema_gate.py) on the real ArgusAI backend image and a real engine.

Every case puts the gate into the release's image as a file and runs `python -m schema_gate`, the way the
program runs it, and reads the result back inside the image (the release's own `Base.metadata`, SQLite's
catalogue, PostgreSQL's):

- SQLite, empty volume: the Alembic chain to head plus the model tables it lacks, the FTS5 table of
  migration 008 present, and the real backend starts on that database;
- SQLite, versionless: a database made by the release's own start-up (`create_all`) is stamped head, its
  tables, rows and the row a test wrote survive, and it gets 008's FTS5 table;
- PostgreSQL, empty: `create_all` + stamp head, exactly the model tables; a second run is a no-op;
- a schema that matches nothing: the gate refuses and leaves every table and row as it was;
- SQLite made by the bare chain (058 drops 008's triggers): the gate re-adds them and re-indexes events.

Every Docker object here carries the label `argusai.stack=gate<hex>` and is removed afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from components.naming import LABEL_STACK
from components.scripts import IN_CONTAINER, SCHEMA_GATE
from testkit.cleanup import remove_stack
from testkit.images.recipes import ARGUSAI_BACKEND
from testkit.oneoff import run_once

from .conftest import POSTGRES_IMAGE, record_result, require_release_image, wait_for

pytestmark = pytest.mark.argusai

ROOT = Path(__file__).resolve().parent.parent.parent
RELEASE_IMAGE = ARGUSAI_BACKEND.tag
HEAD = "a1b2c3d4e5f6"
"""The release's only Alembic head (its script directory; the probe re-reads it)."""
DATA = "/app/data"
SQLITE_URL = "sqlite:////app/data/app.db"
FTS_TABLE = "events_fts"
#: What a gated SQLite database holds besides the model tables: Alembic's version and 008's FTS5 index.
GATED_EXTRA_TABLES = {
    "alembic_version",
    *(f"{FTS_TABLE}{suffix}" for suffix in ("", "_config", "_data", "_docsize", "_idx")),
}
BACKEND_START_SECONDS = 240
PG_START_SECONDS = 120

#: Run inside the release image (cwd /app): the release's model schema, the database's schema, its Alembic
#: version and row counts, as JSON on the last line of stdout.
PROBE = """
import json, os, sys
sys.path.insert(0, os.getcwd())
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
import app.models
from app.core.database import Base
engine = sa.create_engine(os.environ["DATABASE_URL"], poolclass=sa.pool.NullPool)
with engine.connect() as connection:
    inspector = sa.inspect(connection)
    tables = {t: sorted(c["name"] for c in inspector.get_columns(t)) for t in inspector.get_table_names()}
    counts = {t: connection.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar() for t in tables}
    version = []
    if "alembic_version" in tables:
        version = sorted(connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    objects = []
    if connection.dialect.name == "sqlite":
        objects = [list(row) for row in connection.execute(sa.text(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"))]
print(json.dumps({
    "models": {t: sorted(c.name for c in table.columns) for t, table in Base.metadata.tables.items()},
    "heads": sorted(ScriptDirectory.from_config(Config("alembic.ini")).get_heads()),
    "tables": tables, "counts": counts, "version": version, "objects": objects,
}))
"""

#: Plain sqlite3 (no release code), for databases the release's code should not be needed to read or write.
SQLITE_EXEC = """
import json, sqlite3, sys
db = sqlite3.connect("/app/data/app.db")
db.executescript(sys.argv[1])
db.commit()
rows = db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
objects = [list(row) for row in rows]
tables = [o[1] for o in objects if o[0] == "table"]
counts = {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
rows = [list(row) for row in db.execute(sys.argv[2])] if len(sys.argv) > 2 else []
print(json.dumps({"objects": objects, "counts": counts, "rows": rows}))
"""

HEALTH = (
    "import urllib.request\n"
    "try:\n"
    "    print(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=5).status)\n"
    "except Exception as exc:\n"
    "    print('down', type(exc).__name__)\n"
)


def fernet_key() -> str:
    """A fresh Fernet key (32 random bytes, URL-safe base64), as the release's settings demand."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class GateStack:
    """The Docker objects of one test (all labelled `argusai.stack=gate<hex>`) and helpers to use them."""

    def __init__(self, client: docker.DockerClient) -> None:
        """Pick the stack name and the secrets the release's settings need."""
        self.client = client
        self.name = f"gate{secrets.token_hex(3)}"
        self.labels = {LABEL_STACK: self.name}
        self.secrets = {"ENCRYPTION_KEY": fernet_key(), "JWT_SECRET_KEY": secrets.token_hex(32)}

    def volume(self) -> str:
        """A fresh, empty named volume (mounted at /app/data it takes over appuser's ownership)."""
        return self.client.volumes.create(name=f"{self.name}-data-{secrets.token_hex(2)}", labels=self.labels).name

    def network(self) -> str:
        """A private network for the gate and PostgreSQL."""
        return self.client.networks.create(f"{self.name}-net", driver="bridge", labels=self.labels).name

    def env(self, url: str) -> dict[str, str]:
        """What the gate and the backend get: the URL, the secrets, HTTP cookie settings, no price-map fetch."""
        return {
            "DATABASE_URL": url,
            **self.secrets,
            "COOKIE_SECURE": "false",
            "COOKIE_SAMESITE": "lax",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }

    def run(
        self,
        entrypoint: list[str],
        env: dict[str, str],
        *,
        volume: str | None = None,
        network: str | None = None,
        image: str = RELEASE_IMAGE,
        files: dict[str, bytes] | None = None,
    ) -> tuple[int, str, str, float]:
        """Run a one-off container to completion; (exit code, stdout, stderr, seconds from create to exit)."""
        finished = run_once(
            self.client,
            image,
            entrypoint=entrypoint,
            working_dir="/app",
            environment=env,
            volumes={volume: {"bind": DATA, "mode": "rw"}} if volume else {},
            network=network,
            labels=self.labels,
            files=files,
        )
        return finished.code, finished.stdout, finished.stderr, finished.seconds

    def gate(self, url: str, **where: Any) -> tuple[int, str, str, float]:
        """Run the gate script exactly as the program delivers it: its file put in, `python -m schema_gate`."""
        env = {**self.env(url), "PYTHONPATH": IN_CONTAINER}
        return self.run(SCHEMA_GATE.argv, env, files=SCHEMA_GATE.contents(), **where)

    def probe(self, url: str, **where: Any) -> dict[str, Any]:
        """The release's model schema and the database's schema, version and row counts."""
        code, out, err, _ = self.run(["python", "-c", PROBE], self.env(url), **where)
        assert code == 0, f"probe failed ({code}):\n{err[-3000:]}"
        return json.loads(out.strip().splitlines()[-1])

    def sqlite(self, volume: str, statements: str = "", query: str | None = None) -> dict[str, Any]:
        """Run SQL on the volume's app.db with plain sqlite3; its catalogue, row counts and `query`'s rows after."""
        command = ["python", "-c", SQLITE_EXEC, statements] + ([query] if query else [])
        code, out, err, _ = self.run(command, {}, volume=volume)
        assert code == 0, f"sqlite3 failed ({code}):\n{err[-3000:]}"
        return json.loads(out.strip().splitlines()[-1])

    def backend_up(self, volume: str) -> tuple[float, str]:
        """Start the real backend (its default command) on the volume until /health answers 200; then stop it.

        Returns the seconds until healthy and the backend's log. It runs without a network: /health is asked
        from inside the container over loopback.
        """
        start = time.monotonic()
        container = self.client.containers.run(
            RELEASE_IMAGE,
            environment=self.env(SQLITE_URL),
            volumes={volume: {"bind": DATA, "mode": "rw"}},
            network_mode="none",
            labels=self.labels,
            detach=True,
        )
        try:

            def healthy() -> bool:
                container.reload()
                if container.status not in ("created", "running"):
                    logs = container.logs().decode(errors="replace")
                    pytest.fail(f"the backend exited ({container.status}):\n{logs[-4000:]}")
                result = container.exec_run(["python", "-c", HEALTH], user="appuser")
                return result.output.decode(errors="replace").strip() == "200"

            wait_for("the backend's /health", healthy, BACKEND_START_SECONDS, interval=1.0)
            seconds = time.monotonic() - start
            container.stop(timeout=30)
            return seconds, container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)

    def postgres(self, network: str) -> str:
        """Start PostgreSQL on the network; return the gate's URL once it accepts TCP connections."""
        user, password, db = "argus", secrets.token_hex(12), "argusai"
        name = f"{self.name}-postgres"
        container = self.client.containers.run(
            POSTGRES_IMAGE,
            name=name,
            environment={"POSTGRES_USER": user, "POSTGRES_PASSWORD": password, "POSTGRES_DB": db},
            network=network,
            labels=self.labels,
            detach=True,
        )

        def ready() -> bool:
            # Over TCP: the initialisation server listens on the unix socket only.
            return container.exec_run(["pg_isready", "-h", "127.0.0.1", "-U", user, "-d", db]).exit_code == 0

        wait_for("PostgreSQL", ready, PG_START_SECONDS)
        return f"postgresql+psycopg://{user}:{password}@{name}:5432/{db}"

    def cleanup(self) -> None:
        """Remove every container, network and volume of this stack."""
        remove_stack(self.client, self.name)


@pytest.fixture
def gate_stack(engine: docker.DockerClient, images: dict[str, str]) -> Iterator[GateStack]:
    """A fresh labelled stack; needs the real release image (built on request, see testkit/images/build.py)."""
    require_release_image(engine)
    stack = GateStack(engine)
    try:
        yield stack
    finally:
        stack.cleanup()


def assert_gated(probe: dict[str, Any]) -> None:
    """At the release's head, with every model table and column."""
    assert probe["heads"] == [HEAD], f"the release's head moved: {probe['heads']}"
    assert probe["version"] == [HEAD]
    for table, columns in probe["models"].items():
        assert table in probe["tables"], f"model table {table} missing"
        lacking = set(columns) - set(probe["tables"][table])
        assert not lacking, f"{table} lacks {lacking}"


def assert_summary(out: str, expected: str) -> None:
    """The gate's one stdout line."""
    lines = out.strip().splitlines()
    assert lines == [f"schema-gate: {expected} (rev {HEAD})"], out


def test_sqlite_empty_runs_the_chain_and_the_release_starts_on_it(gate_stack: GateStack) -> None:
    """Empty volume: chain to head (with 008's FTS5 table) + the model tables the chain lacks; backend starts."""
    volume = gate_stack.volume()
    code, out, err, seconds = gate_stack.gate(SQLITE_URL, volume=volume)
    assert code == 0, err[-4000:]
    assert_summary(out, "sqlite empty -> upgrade head + create_all of 3 tables the chain lacks + fts5 triggers of 008")
    assert "hot_camera_activity, hot_entity_activity, notifications" in err
    assert "postgresql" not in out
    probe = gate_stack.probe(SQLITE_URL, volume=volume)
    assert_gated(probe)
    fts = [o for o in probe["objects"] if o[1] == FTS_TABLE]
    assert fts, "no events_fts"
    assert "fts5" in fts[0][3].lower()
    triggers = sorted(o[1] for o in probe["objects"] if o[0] == "trigger")
    assert triggers == ["events_ad", "events_ai", "events_au"]
    assert set(probe["tables"]) - set(probe["models"]) == GATED_EXTRA_TABLES

    again_code, again_out, again_err, again_seconds = gate_stack.gate(SQLITE_URL, volume=volume)
    assert again_code == 0, again_err[-4000:]
    assert_summary(again_out, "sqlite versioned -> already at head")

    up_seconds, _ = gate_stack.backend_up(volume)
    after = gate_stack.probe(SQLITE_URL, volume=volume)
    assert_gated(after)
    assert after["counts"]["users"] == 1, "the release's start-up made its admin user on the gated database"
    assert after["tables"] == probe["tables"], "the release's start-up changed the schema"
    record_result(
        f"argusai schema gate, sqlite empty: gate {seconds:.2f}s, second run (no-op) {again_seconds:.2f}s, "
        f"backend healthy on it after {up_seconds:.1f}s"
    )


def test_sqlite_versionless_is_stamped_and_keeps_every_row(gate_stack: GateStack) -> None:
    """A database made by the release's own start-up is stamped head; nothing in it changes."""
    volume = gate_stack.volume()
    up_seconds, _ = gate_stack.backend_up(volume)
    before = gate_stack.sqlite(
        volume,
        "INSERT INTO system_settings (key, value, updated_at) VALUES ('gate_probe', 'kept', CURRENT_TIMESTAMP);",
    )
    tables_before = {o[1]: o[3] for o in before["objects"] if o[0] == "table"}
    assert "alembic_version" not in tables_before, "the release's start-up now runs Alembic"
    assert FTS_TABLE not in tables_before
    assert before["counts"]["users"] == 1
    assert before["counts"]["system_settings"] >= 1

    code, out, err, seconds = gate_stack.gate(SQLITE_URL, volume=volume)
    assert code == 0, err[-4000:]
    assert_summary(out, "sqlite versionless -> stamped head + fts5 table of 008")

    after = gate_stack.sqlite(volume, "")
    tables_after = {o[1]: o[3] for o in after["objects"] if o[0] == "table"}
    for table, sql in tables_before.items():
        assert tables_after.get(table) == sql, f"table {table} changed"
        assert after["counts"][table] == before["counts"][table], f"rows of {table} changed"
    assert set(tables_after) - set(tables_before) == GATED_EXTRA_TABLES
    probe = gate_stack.probe(SQLITE_URL, volume=volume)
    assert_gated(probe)
    kept = gate_stack.sqlite(volume, query="SELECT value FROM system_settings WHERE key = 'gate_probe'")
    assert kept["rows"] == [["kept"]]

    again_code, again_out, _, again_seconds = gate_stack.gate(SQLITE_URL, volume=volume)
    assert again_code == 0
    assert_summary(again_out, "sqlite versioned -> already at head")
    record_result(
        f"argusai schema gate, sqlite versionless (made by the release's start-up in {up_seconds:.1f}s): "
        f"gate {seconds:.2f}s, second run {again_seconds:.2f}s"
    )


def test_postgresql_empty_gets_the_model_schema_and_a_second_run_is_a_noop(gate_stack: GateStack) -> None:
    """PostgreSQL cannot run the chain (008 is FTS5): create_all + stamp head; then a no-op."""
    network = gate_stack.network()
    url = gate_stack.postgres(network)
    code, out, err, seconds = gate_stack.gate(url, network=network)
    assert code == 0, err[-4000:]
    assert_summary(out, "postgresql empty -> create_all + stamped head")
    assert url.split("@")[0].split(":")[-1] not in out + err, "the gate printed the password"
    probe = gate_stack.probe(url, network=network)
    assert_gated(probe)
    assert set(probe["tables"]) == set(probe["models"]) | {"alembic_version"}
    assert all(count == 0 for table, count in probe["counts"].items() if table != "alembic_version")

    again_code, again_out, again_err, again_seconds = gate_stack.gate(url, network=network)
    assert again_code == 0, again_err[-4000:]
    assert_summary(again_out, "postgresql versioned -> already at head")
    assert gate_stack.probe(url, network=network)["tables"] == probe["tables"]
    record_result(
        f"argusai schema gate, postgresql empty: gate {seconds:.2f}s, second run (no-op) {again_seconds:.2f}s"
    )


def test_a_schema_that_matches_nothing_is_refused_and_left_alone(gate_stack: GateStack) -> None:
    """An unrelated table plus a models table missing columns: non-zero exit, nothing touched."""
    volume = gate_stack.volume()
    before = gate_stack.sqlite(
        volume,
        "CREATE TABLE unrelated (x INTEGER);"
        "INSERT INTO unrelated VALUES (1), (2);"
        "CREATE TABLE cameras (id VARCHAR PRIMARY KEY, name VARCHAR(100) NOT NULL);"
        "INSERT INTO cameras VALUES ('c1', 'front door');",
    )
    code, out, err, seconds = gate_stack.gate(SQLITE_URL, volume=volume)
    assert code != 0, out
    assert out.strip() == "", out
    assert "FAILED" in err
    assert "table cameras lacks columns:" in err
    assert "missing tables: " in err
    assert "events" in err
    after = gate_stack.sqlite(volume, "")
    assert after == before, "the gate changed a database it refused"
    record_result(f"argusai schema gate, unknown schema: refused (exit {code}) in {seconds:.2f}s")


def test_sqlite_chain_database_gets_back_the_fts_triggers_058_dropped(gate_stack: GateStack) -> None:
    """A database `alembic upgrade head` made: 058 rebuilt `events`, dropping 008's triggers; events are kept."""
    volume = gate_stack.volume()
    code, _, err, _ = gate_stack.gate(SQLITE_URL, volume=volume)
    assert code == 0, err[-4000:]
    # What the bare chain leaves (no triggers), with events the index never saw.
    before = gate_stack.sqlite(
        volume,
        "DROP TRIGGER events_ai; DROP TRIGGER events_au; DROP TRIGGER events_ad;"
        "INSERT INTO events (id, camera_id, timestamp, description, confidence, objects_detected) VALUES "
        "('e1', 'c1', '2026-01-01 00:00:00', 'a red bicycle at the gate', 90, '[]'),"
        "('e2', 'c1', '2026-01-01 00:01:00', 'a parcel on the step', 80, '[]');",
        query="SELECT id FROM events_fts WHERE description MATCH 'bicycle'",
    )
    assert before["rows"] == []
    code, out, err, seconds = gate_stack.gate(SQLITE_URL, volume=volume)
    assert code == 0, err[-4000:]
    assert_summary(out, "sqlite versioned -> already at head + fts5 triggers of 008")
    after = gate_stack.sqlite(volume, query="SELECT id FROM events_fts WHERE description MATCH 'bicycle'")
    assert after["rows"] == [["e1"]]
    assert after["counts"]["events"] == 2
    assert sorted(o[1] for o in after["objects"] if o[0] == "trigger") == ["events_ad", "events_ai", "events_au"]
    record_result(f"argusai schema gate, sqlite chain-made without fts triggers: repaired in {seconds:.2f}s")

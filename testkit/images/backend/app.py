"""Stand-in for ArgusAI's FastAPI backend, for the infrastructure tests.

It behaves like the real backend wherever the deployment touches it, using
only the standard library plus Debian's psycopg2 and cryptography:

- ``DATABASE_URL``: ``postgresql://user:password@host:port/db`` (also
  ``postgresql+psycopg2://`` and ``postgresql+psycopg://``; user and password percent-encoded), or
  ``sqlite:////absolute/path.db`` / ``sqlite:///relative/path.db`` (relative
  to the working directory). Default: ``sqlite:///./data/app.db``.
- ``ENCRYPTION_KEY`` must be a valid Fernet key, or the process refuses to
  start (exit 2).
- At start it runs its "migration" (tables ``alembic_version`` and
  ``events``) and records a 'startup' event; an unreachable database makes
  it exit non-zero at once, as Alembic would.
- HTTP on 0.0.0.0:8000: ``GET /health`` (200 only while ``SELECT 1`` works,
  else 503), ``POST /events`` (201 with the new id), ``GET /events``.
- SIGTERM/SIGINT shut the server down cleanly and fast.

Every request opens its own connection, so no transaction stays open while
a backup sidecar copies the SQLite file with the online backup API.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import psycopg2
from cryptography.fernet import Fernet

LISTEN_HOST = "0.0.0.0"  # noqa: S104 - a container must listen on all addresses
LISTEN_PORT = 8000
DEFAULT_DATABASE_URL = "sqlite:///./data/app.db"
# Same revision id shape as Alembic's; the value only has to be stable.
MIGRATION_REVISION = "0001_initial"
# Seconds to wait for a database connection; short so that start-up fails
# fast and /health answers within a healthcheck's timeout.
CONNECT_TIMEOUT_SECONDS = 3
# Exit codes: a configuration the process refuses vs. a database it cannot use.
EXIT_BAD_CONFIG = 2
EXIT_DATABASE_ERROR = 1
# How often serve_forever() checks for a shutdown request.
SHUTDOWN_POLL_SECONDS = 0.2
# Note stored by POST /events when the body names none.
DEFAULT_NOTE = "event"
# Largest request body read for POST /events.
MAX_BODY_BYTES = 64 * 1024
POSTGRES_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg")
SQLITE_PREFIX = "sqlite:///"


class ConfigError(Exception):
    """The environment holds a setting the backend cannot work with."""


@dataclass(frozen=True)
class Database:
    """Where the data lives and how to open a connection to it."""

    kind: str  # "postgresql" or "sqlite"
    sqlite_path: str = ""
    pg_params: dict[str, Any] = field(default_factory=dict)

    def sql(self, statement: str) -> str:
        """Adapt a statement written with ``?`` markers to the driver's paramstyle."""
        return statement.replace("?", "%s") if self.kind == "postgresql" else statement

    def describe(self) -> str:
        """A loggable description, without the password."""
        if self.kind == "sqlite":
            return f"sqlite {self.sqlite_path}"
        params = self.pg_params
        return f"postgresql {params['user']}@{params['host']}:{params['port']}/{params['dbname']}"

    @contextmanager
    def connect(self) -> Iterator[Any]:
        """Yield a fresh connection; commit on success, always close."""
        if self.kind == "sqlite":
            conn: Any = sqlite3.connect(self.sqlite_path, timeout=CONNECT_TIMEOUT_SECONDS)
        else:
            conn = psycopg2.connect(connect_timeout=CONNECT_TIMEOUT_SECONDS, **self.pg_params)
        try:
            yield conn
            conn.commit()
        finally:
            conn.close()


def parse_database_url(url: str) -> Database:
    """Turn DATABASE_URL into a Database, decoding percent-encoded credentials."""
    if url.startswith(SQLITE_PREFIX):
        # sqlite:////abs.db keeps its leading "/" after the prefix; sqlite:///rel.db
        # is relative to the working directory, as with SQLAlchemy.
        path = url[len(SQLITE_PREFIX) :]
        if not path:
            raise ConfigError("DATABASE_URL: sqlite URL without a file path")
        return Database(kind="sqlite", sqlite_path=os.path.abspath(path))

    parts = urlsplit(url)
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ConfigError(
            f"DATABASE_URL: unsupported scheme {parts.scheme!r} "
            "(expected postgresql://, postgresql+psycopg2:// or sqlite:///)"
        )
    try:
        port = parts.port or 5432
    except ValueError as exc:
        raise ConfigError(f"DATABASE_URL: bad port: {exc}") from exc
    dbname = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not dbname:
        raise ConfigError("DATABASE_URL: host and database name are required")
    params: dict[str, Any] = {
        "host": parts.hostname,
        "port": port,
        # urlsplit does not decode these; any character must survive.
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "dbname": dbname,
    }
    # Extra query parameters (e.g. sslmode=disable) go to libpq as they are.
    params.update(parse_qsl(parts.query))
    return Database(kind="postgresql", pg_params=params)


def check_encryption_key(key: str | None) -> None:
    """Refuse a missing or invalid Fernet key, as the real backend does."""
    if not key:
        raise ConfigError("ENCRYPTION_KEY is not set")
    try:
        Fernet(key)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"ENCRYPTION_KEY is not a valid Fernet key: {exc}") from exc


def migrate(db: Database) -> None:
    """Create the schema if absent, stamp its revision once, log a startup row."""
    id_column = "SERIAL PRIMARY KEY" if db.kind == "postgresql" else "INTEGER PRIMARY KEY AUTOINCREMENT"
    with db.connect() as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS events (id {id_column}, note TEXT NOT NULL, "
            "created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        cur.execute(
            db.sql(
                "INSERT INTO alembic_version (version_num) SELECT ? WHERE NOT EXISTS (SELECT 1 FROM alembic_version)"
            ),
            (MIGRATION_REVISION,),
        )
        cur.execute(db.sql("INSERT INTO events (note) VALUES (?)"), ("startup",))


def insert_event(db: Database, note: str) -> int:
    """Insert one event and return its id."""
    with db.connect() as conn:
        cur = conn.cursor()
        if db.kind == "postgresql":
            cur.execute("INSERT INTO events (note) VALUES (%s) RETURNING id", (note,))
            return int(cur.fetchone()[0])
        cur.execute("INSERT INTO events (note) VALUES (?)", (note,))
        return int(cur.lastrowid)


def list_notes(db: Database) -> list[str]:
    """All event notes, oldest first."""
    with db.connect() as conn:
        cur = conn.cursor()
        cur.execute("SELECT note FROM events ORDER BY id")
        return [row[0] for row in cur.fetchall()]


def database_answers(db: Database) -> bool:
    """Whether a fresh connection can run SELECT 1 right now."""
    try:
        with db.connect() as conn:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            return cur.fetchone()[0] == 1
    except (psycopg2.Error, sqlite3.Error):
        return False


class Handler(BaseHTTPRequestHandler):
    """The backend's HTTP API."""

    server_version = "argusai-backend-standin"
    db: Database  # set on the class before serving

    def _reply(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        """Serve /health and /events."""
        path = urlsplit(self.path).path
        if path == "/health":
            if database_answers(self.db):
                self._reply(HTTPStatus.OK, {"status": "ok"})
            else:
                self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "database unavailable"})
        elif path == "/events":
            try:
                notes = list_notes(self.db)
            except (psycopg2.Error, sqlite3.Error) as exc:
                self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
                return
            self._reply(HTTPStatus.OK, {"count": len(notes), "notes": notes})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:
        """Serve POST /events with an optional JSON body {"note": "..."}."""
        if urlsplit(self.path).path != "/events":
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "body too large"})
            return
        raw = self.rfile.read(length) if length else b""
        try:
            payload = json.loads(raw) if raw.strip() else {}
            if not isinstance(payload, dict):
                raise ValueError("not a JSON object")
            note = str(payload.get("note", DEFAULT_NOTE))
        except ValueError:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "body is not a JSON object"})
            return
        try:
            event_id = insert_event(self.db, note)
        except (psycopg2.Error, sqlite3.Error) as exc:
            self._reply(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
            return
        self._reply(HTTPStatus.CREATED, {"id": event_id, "note": note})

    def log_message(self, fmt: str, *args: Any) -> None:
        """Log only failed requests: healthchecks would flood the log."""
        if len(args) >= 2 and str(args[1]).startswith(("4", "5")):
            super().log_message(fmt, *args)


def main() -> int:
    """Check the configuration, migrate, then serve until SIGTERM/SIGINT."""
    try:
        check_encryption_key(os.environ.get("ENCRYPTION_KEY"))
        db = parse_database_url(os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL)
    except ConfigError as exc:
        print(f"argusai-backend: refusing to start: {exc}", file=sys.stderr, flush=True)
        return EXIT_BAD_CONFIG

    try:
        if db.kind == "sqlite":
            os.makedirs(os.path.dirname(db.sqlite_path), exist_ok=True)
        migrate(db)
    except (psycopg2.Error, sqlite3.Error, OSError) as exc:
        print(
            f"argusai-backend: database {db.describe()} unusable at start-up: {exc}",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_DATABASE_ERROR

    Handler.db = db
    server = ThreadingHTTPServer((LISTEN_HOST, LISTEN_PORT), Handler)
    server.daemon_threads = True  # in-flight requests must not delay exit

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return, and serve_forever()
        # runs in this (the main) thread: call it from another thread.
        print(f"argusai-backend: signal {signum}, stopping", flush=True)
        threading.Thread(target=server.shutdown, daemon=True).start()

    # Python as PID 1 would otherwise ignore SIGTERM from `docker stop`.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    print(
        f"argusai-backend: listening on {LISTEN_HOST}:{LISTEN_PORT}, database {db.describe()}",
        flush=True,
    )
    server.serve_forever(poll_interval=SHUTDOWN_POLL_SECONDS)
    server.server_close()
    print("argusai-backend: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

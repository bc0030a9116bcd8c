"""Backend: database URL and keys in a secret env, /health, reached only through the proxy, waits for postgres."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from components.backend import (
    DATA_PATH,
    HEALTHCHECK,
    PORT,
    READY_MARKER,
    STEADY_PROBE_SECONDS,
    Backend,
    BackendArgs,
)
from components.database.base import SQLITE_URL
from components.docker_common import FIRST_PROBE_DELAY_SECONDS
from components.naming import Naming
from testkit.harness import Deployment, run_components, run_program
from testkit.net import LOOPBACK, free_port

PROBE_TIMEOUT_SECONDS = 30
# Long enough for sh and Python to start and poll a few times on a loaded machine.
PROBE_SETTLE_SECONDS = 2.0


def test_component_with_args_passed_in() -> None:
    """Volume, image by id, networks with alias, no port of its own, healthcheck, wait."""
    _, deployment = run_components(
        lambda: Backend(
            "api",
            BackendArgs(
                naming=Naming("argusai", "unit"),
                image="example/backend:1",
                env=["A=1"],
                app_network="argusai-unit-app",
                db_network="argusai-unit-db",
                protect_data=True,
                follow_registry=False,
            ),
        )
    )
    c = deployment.container("backend")
    assert not c.plain("ports"), "reached through the proxy only"
    assert c.plain("networksAdvanced") == [
        {"name": "argusai-unit-app", "aliases": ["backend"]},
        {"name": "argusai-unit-db", "aliases": ["backend"]},
    ]
    assert c.plain("volumes") == [{"volumeName": "argusai-unit-data", "containerPath": DATA_PATH}]
    assert "/health" in " ".join(c.plain("healthcheck")["tests"])
    assert c.plain("restart") == "unless-stopped"
    assert c.plain("wait") is True
    assert c.is_secret("envs")
    assert c.delete_before_replace
    volume = deployment.volume("data")
    assert volume.retain_on_delete
    assert volume.protect


def test_sqlite_default(embedded: Deployment) -> None:
    """Default mode: SQLite file in the data volume, no postgres, no database network."""
    env = embedded.container("backend").env()
    assert env["DATABASE_URL"] == SQLITE_URL == "sqlite:////app/data/app.db"
    assert [r for r in embedded.registrations if r.plain("name") == "argusai-embedded-postgres"] == []
    assert len(embedded.container("backend").plain("networksAdvanced")) == 1


def test_postgres_mode_env_and_dependency(prod_deployed: Deployment) -> None:
    """DATABASE_URL points at the alias; valid Fernet key; JWT key; created after postgres has its password.

    On a stack whose backend may be serving; a new stack's backend waits itself (`tests/test_backend_start.py`).
    """
    prod = prod_deployed
    env = prod.container("backend").env()
    assert env["DATABASE_URL"].startswith("postgresql+psycopg://argusai:")
    assert env["DATABASE_URL"].endswith("@postgres:5432/argusai")
    Fernet(env["ENCRYPTION_KEY"])
    assert len(env["JWT_SECRET_KEY"]) >= 32
    # After the server answers with the stack's password: the role step, which waits for the server.
    assert prod.container("postgres-role").urn in prod.container("backend").dependencies
    assert prod.container("postgres").urn in prod.container("postgres-role").dependencies
    assert prod.container("postgres").plain("wait") is True


def test_operator_settings_reach_the_backend(prod: Deployment) -> None:
    """Typed settings and the free-form lists from Pulumi.prod.yaml land in the environment."""
    env = prod.container("backend").env()
    assert env["LOG_LEVEL"] == "INFO"
    assert env["COOKIE_SECURE"] == "true"
    assert env["COOKIE_SAMESITE"] == "strict"
    assert env["CORS_ORIGINS"] == "https://argusai.example.lan"
    assert env["MQTT_HOST"] == "mqtt.example.lan"


def test_secret_settings_are_secret() -> None:
    """AI provider keys and the like go in as secrets and stay secret in the env list."""
    deployment = run_program("dev", secrets={"backendSecretEnv": ["OPENAI_API_KEY=sk-test", "MQTT_PASSWORD=m"]})
    c = deployment.container("backend")
    env = deployment.container("backend").env()
    assert env["OPENAI_API_KEY"] == "sk-test"
    assert env["MQTT_PASSWORD"] == "m"
    assert c.is_secret("envs")


def test_published_where_configured() -> None:
    """BindAddress and the ports decide where the proxy publishes the app, the old ports the API, and the URLs."""
    deployment = run_program("embedded", {"bindAddress": "192.0.2.10", "backendPort": 18000, "httpPort": 8080})
    assert not deployment.container("backend").plain("ports")
    ports = {(p["ip"], p["external"]) for p in deployment.container("proxy").plain("ports")}
    assert ports == {("192.0.2.10", 8080)}
    ports = {(p["ip"], p["external"]) for p in deployment.container("old-ports").plain("ports")}
    assert ports == {("192.0.2.10", 18000), ("192.0.2.10", 3000)}
    assert deployment.outputs["url"].value == "http://192.0.2.10:8080"
    assert deployment.outputs["backendUrl"].value == "http://192.0.2.10:18000"


def test_cors_origins_default_to_the_published_urls() -> None:
    """The release's default (ports 3000 and 8000) is wrong for any other port: the published URLs instead."""
    env = run_program("it", {"frontendPort": 3300, "backendPort": 8300}).container("backend").env()
    assert env["CORS_ORIGINS"] == "http://localhost,http://localhost:3300,http://localhost:8300"
    env = run_program("it", {"corsOrigins": "https://argus.example.lan"}).container("backend").env()
    assert env["CORS_ORIGINS"] == "https://argus.example.lan"


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the handler's API
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def _serving(port: int) -> Iterator[None]:
    server = http.server.HTTPServer((LOOPBACK, port), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_waits_for_health_then_checks_at_a_steady_rate(tmp_path: Path) -> None:
    """The probe, run by a real sh and Python: the first waits for /health 200, later ones check once."""
    if shutil.which("sh") is None:
        pytest.skip("no sh on this machine")
    port = free_port()
    marker = tmp_path / "reported"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)  # the image's `python`
    probe = (
        HEALTHCHECK.test[1]
        .replace(f"127.0.0.1:{PORT}", f"{LOOPBACK}:{port}")
        .replace(READY_MARKER, str(marker))
        # The steady probe's sleep, cut short so the check after it can be seen.
        .replace(f"sleep {STEADY_PROBE_SECONDS - FIRST_PROBE_DELAY_SECONDS:g}", "sleep 0")
    )
    assert probe != HEALTHCHECK.test[1]
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin"}

    def run() -> subprocess.Popen[str]:
        return subprocess.Popen(["sh", "-c", probe], env=env, text=True)  # noqa: S603, S607

    first = run()
    try:
        time.sleep(PROBE_SETTLE_SECONDS)
        assert first.poll() is None, "the first probe waits while the backend starts"
        with _serving(port):
            assert first.wait(timeout=PROBE_TIMEOUT_SECONDS) == 0
            assert marker.exists()
            later = run()
            assert later.wait(timeout=PROBE_TIMEOUT_SECONDS) == 0
        # Reported once: a later probe checks once and fails at once when /health does not answer.
        started = time.monotonic()
        down = run()
        assert down.wait(timeout=PROBE_TIMEOUT_SECONDS) == 1
        assert time.monotonic() - started < PROBE_TIMEOUT_SECONDS / 2
    finally:
        if first.poll() is None:
            first.kill()

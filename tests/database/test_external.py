"""`database: external`: the URL and CA are refused before anything is declared, or reach every container."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.database.external_client import CA_PATH
from components.scripts import IN_CONTAINER, PG_VERSION
from components.settings import ConfigError, masked_url
from testkit.harness import Deployment, commit, run_program
from testkit.pki import Certificates
from testkit.plan import State
from testkit.stand_ins import stand_in_programs

PASSWORD = "s3cr3t-Pa55"
URL = f"postgresql://argus:{PASSWORD}@db.example.lan:6432/events"


# A CA made by the test kit (the integration tests' server elsewhere uses the same).
CA = Certificates.for_address("192.0.2.10").ca


def _external(
    url: str = URL, overrides: dict[str, Any] | None = None, prior: State | None = None, **secrets: Any
) -> Deployment:
    return run_program(
        "embedded", {"database": "external", **(overrides or {})}, {"databaseUrl": url, **secrets}, prior=prior
    )


def _refused(url: str | None, match: str, overrides: dict[str, Any] | None = None, *, secret: bool = True) -> str:
    config = {"database": "external", **(overrides or {})}
    secrets = {}
    if url is not None:
        (secrets if secret else config)["databaseUrl"] = url
    with pytest.raises(ConfigError, match=match) as info:
        run_program("embedded", config, secrets)
    assert info.value.registrations == [], "resources were declared before config was validated"
    message = str(info.value)
    assert PASSWORD not in message
    return message


@pytest.mark.parametrize(
    ("url", "match"),
    [
        (None, r"argusai:databaseUrl' must be set with argusai:database external"),
        ("db.example.lan:5432", r"argusai:databaseUrl' must be a PostgreSQL URL"),
        (f"mysql://argus:{PASSWORD}@db/events", r"argusai:databaseUrl' must be a PostgreSQL URL"),
        (f"postgresql://argus:{PASSWORD}@/events", r"argusai:databaseUrl' names no host"),
        (f"postgresql://:{PASSWORD}@db/events", r"argusai:databaseUrl' names no user"),
        ("postgresql://argus@db/events", r"argusai:databaseUrl' has no password"),
        (f"postgresql://argus:{PASSWORD}@db:99999/events", r"argusai:databaseUrl' must look like"),
        (f"postgresql://argus:{PASSWORD}@db:5432/", r"argusai:databaseUrl' names no database"),
        (f"{URL}?sslmode=sometimes", r"argusai:databaseUrl' sslmode must be one of disable, allow, prefer"),
        (f"{URL}?sslrootcert=/etc/ca.pem", r"argusai:databaseUrl' parameter 'sslrootcert' is not allowed"),
        (f"{URL}?sslmode=verify-full", r"argusai:databaseCaCert' must be set for sslmode=verify-full"),
        (f"{URL}?sslmode=verify-ca", r"argusai:databaseCaCert' must be set for sslmode=verify-ca"),
    ],
)
def test_bad_url_is_refused_naming_the_key_and_never_the_password(url: str | None, match: str) -> None:
    """Each malformed or incomplete URL stops the program before any resource, password masked."""
    _refused(url, match)


def test_a_url_set_in_plain_text_is_refused() -> None:
    """The URL holds a password: it must be a secret in the stack file."""
    _refused(URL, r"argusai:databaseUrl' holds a password: set it with `pulumi config set --secret", secret=False)


def test_bad_ca_is_refused() -> None:
    """Not PEM, a key instead of a certificate, or a CA with sslmode disable."""
    verify = f"{URL}?sslmode=verify-full"
    _refused(verify, r"argusai:databaseCaCert' must be PEM certificates", {"databaseCaCert": "not a certificate"})
    key = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"
    _refused(verify, r"argusai:databaseCaCert' holds a private key", {"databaseCaCert": key})
    garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    _refused(
        verify, r"argusai:databaseCaCert' holds a PEM block that is not a certificate", {"databaseCaCert": garbage}
    )
    _refused(f"{URL}?sslmode=disable", r"argusai:databaseCaCert' is used only with sslmode", {"databaseCaCert": CA})


def test_url_and_ca_belong_to_external_mode_only() -> None:
    """Set in another mode they would be silently ignored: refused instead."""
    with pytest.raises(ConfigError, match=r"argusai:databaseUrl' is used only with argusai:database external"):
        run_program("embedded", {}, {"databaseUrl": URL})
    with pytest.raises(ConfigError, match=r"argusai:databaseCaCert' is used only with argusai:database external"):
        run_program("prod", {"databaseCaCert": CA})


def test_masked_url_hides_only_the_password() -> None:
    """What the messages show of a URL."""
    assert masked_url(f"{URL}?sslmode=require") == "postgresql://argus:***@db.example.lan:6432/events?sslmode=require"
    assert masked_url("postgresql://argus@db/x") == "postgresql://argus@db/x"


@pytest.fixture(scope="module")
def external() -> Deployment:
    """An external stack with TLS verified against a CA."""
    return _external(f"{URL}?sslmode=verify-full&connect_timeout=10", {"databaseCaCert": CA})


def test_no_postgres_container_and_no_database_network(external: Deployment) -> None:
    """Nothing runs or mounts PostgreSQL's data; its volume stays declared (a stack that leaves its own keeps it)."""
    roles = {r.plain("name") for r in external.of_type("docker:index/container:Container")}
    assert "argusai-embedded-postgres" not in roles
    assert [n.plain("name") for n in external.of_type("docker:index/network:Network")] == ["argusai-embedded-app"]
    for container in external.of_type("docker:index/container:Container"):
        assert "argusai-embedded-pgdata" not in {v["volumeName"] for v in container.plain("volumes") or []}
    assert external.outputs["pgdataVolume"].value == "argusai-embedded-pgdata"


def test_backend_url_names_the_driver_tls_and_the_uploaded_ca(external: Deployment) -> None:
    """The backend connects with verify-full against the CA uploaded into its container; the URL is secret."""
    backend = external.container("backend")
    url = backend.env()["DATABASE_URL"]
    assert url == (
        f"postgresql+psycopg://argus:{PASSWORD}@db.example.lan:6432/events"
        f"?sslmode=verify-full&connect_timeout=10&sslrootcert={CA_PATH.replace('/', '%2F')}"
    )
    assert backend.is_secret("envs")
    assert external.outputs["databaseUrl"].secret
    assert {"file": CA_PATH, "content": CA} in backend.plain("uploads")
    assert [n["name"] for n in backend.plain("networksAdvanced")] == ["argusai-embedded-app"]


def test_every_container_that_connects_gets_libpq_tls_settings_and_the_ca(external: Deployment) -> None:
    """The version check, the pre-upgrade backup, the release's steps and the backup loop: same server, same TLS."""
    for role in ("pg-version", "schema-backup", "release-steps", "backup"):
        container = external.container(role)
        # Besides the CA, only the scripts the container runs (components/scripts, uploaded as files).
        uploads = container.plain("uploads")
        assert [u for u in uploads if "content" in u] == [{"file": CA_PATH, "content": CA}], role
        assert all(u["file"].startswith(IN_CONTAINER) for u in uploads if "content" not in u), role
        assert [n["name"] for n in container.plain("networksAdvanced")] == ["argusai-embedded-app"], role
        assert container.is_secret("envs"), role
    for role in ("pg-version", "schema-backup", "backup"):
        env = external.container(role).env()
        assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGDATABASE"]) == (
            "db.example.lan",
            "6432",
            "argus",
            "events",
        )
        assert (env["PGPASSWORD"], env["PGSSLMODE"], env["PGSSLROOTCERT"]) == (PASSWORD, "verify-full", CA_PATH)
        assert env["PGCONNECT_TIMEOUT"] == "10"


def test_the_version_check_comes_before_anything_that_connects(external: Deployment) -> None:
    """Backups, the release's steps and the backend wait for the check, which runs `postgresImage`'s psql and pg_dump.

    On a new stack the backend is created beside them and connects only once the steps passed (after the
    check); on the next `up` it is created after the check.
    """
    check = external.container("pg-version")
    assert check.plain("image") == external.container("backup").plain("image")
    assert "server_version_num" in check.uploaded()[f"{IN_CONTAINER}/pg_version.sh"]
    for role in ("schema-backup", "release-steps", "backup"):
        assert check.urn in external.container(role).dependencies, role
    again = _external(f"{URL}?sslmode=verify-full&connect_timeout=10", {"databaseCaCert": CA}, commit(external))
    assert again.container("pg-version").urn in again.container("backend").dependencies


def test_without_tls_settings_no_file_is_uploaded() -> None:
    """No sslmode (libpq's default, prefer) and no CA: plain settings, nothing uploaded."""
    backend = _external().container("backend")
    assert backend.env()["DATABASE_URL"] == f"postgresql+psycopg://argus:{PASSWORD}@db.example.lan:6432/events"
    assert [u["file"] for u in backend.plain("uploads")] == [f"{IN_CONTAINER}/backend_serve.py"]


def _version_check(
    tmp_path: Path, server_num: str, dump_version: str, *, connects: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the check with stand-in `psql` and `pg_dump` that print what a server and a client would."""
    answer = f'case "$*" in *server_version_num*) echo {server_num};; *ssl*) echo t;; esac'
    bin_dir = stand_in_programs(
        tmp_path / "bin",
        {
            "psql": f"{answer if connects else 'echo psql: error: connection refused >&2; exit 2'}\n",
            "pg_dump": f"echo 'pg_dump (PostgreSQL) {dump_version}'\n",
        },
    )
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "PGHOST": "db.example.lan",
        "PGPORT": "5432",
        "PGDATABASE": "events",
        "CLIENT_IMAGE": "postgres:15-alpine",
    }
    return subprocess.run(  # noqa: S603 - the program's own script under sh
        ["/bin/sh", "-c", PG_VERSION.text()], env=env, capture_output=True, text=True, timeout=30, check=False
    )


def test_version_check_refuses_a_pg_dump_older_than_the_server(tmp_path: Path) -> None:
    """Server 17, pg_dump 15: refused, naming the key and an image that can back it up."""
    done = _version_check(tmp_path, "170002", "15.8 (Debian 15.8-0+deb12u1)")
    assert done.returncode == 1
    assert "the server runs PostgreSQL 17, and pg_dump in postgres:15-alpine is 15" in done.stderr
    assert "argusai:postgresImage" in done.stderr
    assert "postgres:17-alpine" in done.stderr


def test_version_check_accepts_a_pg_dump_as_new_or_newer(tmp_path: Path) -> None:
    """Server 15 with pg_dump 16: backups can be taken (pg_dump reads older servers)."""
    done = _version_check(tmp_path, "150008", "16.4")
    assert done.returncode == 0, done.stderr
    assert "server PostgreSQL 15 (150008), pg_dump 16, TLS t" in done.stdout


def test_version_check_reports_a_server_it_cannot_reach(tmp_path: Path) -> None:
    """No connection (a wrong CA, a closed port): a failure that says which server, psql's error kept."""
    done = _version_check(tmp_path, "", "15.8", connects=False)
    assert done.returncode == 1
    assert "connection refused" in done.stderr
    assert "cannot connect to the server db.example.lan:5432" in done.stderr

"""PostgreSQL: data retained, image by id, healthcheck over TCP, wait, no host port, clean stop."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pulumi
import pytest

from components.database.postgres_server import (
    CHECK_MOUNT,
    DATA_PATH,
    READY_MARKER,
    Postgres,
    PostgresArgs,
    database_url,
    healthcheck,
)
from components.naming import Naming
from components.scripts import PGDATA_CHECK
from testkit.harness import IMAGE, Deployment, resolve, run_components, run_program
from testkit.stand_ins import path_first, stand_in_programs

HOSTILE = "p@ss:w/rd%?#"
PROBE_TIMEOUT_SECONDS = 30
# A stand-in pg_isready: "accepting connections" once the file `up` exists, exit 2 (no response) before.
FAKE_PG_ISREADY = 'if [ -f "$UP" ]; then echo "accepting connections"; exit 0; fi; exit 2\n'


def _postgres(protect: bool = True, upgrades: tuple[int, ...] = ()) -> tuple[Postgres, Deployment]:
    return run_components(
        lambda: Postgres(
            "pg",
            PostgresArgs(
                naming=Naming("argusai", "unit"),
                image="postgres:16-alpine",
                user="argusai",
                db="events",
                password=pulumi.Output.secret("s3cret-pass"),
                driver="psycopg",
                network_name="argusai-unit-db",
                protect_data=protect,
                follow_registry=False,
                log_volume="argusai-unit-backups",
                log_mount="/backups",
                log_dir="/backups/steps",
                upgrades=upgrades,
            ),
        )
    )


def test_pgdata_volume_is_named_retained_and_mounted() -> None:
    """No destroy or replacement ever deletes the data; the volume is where postgres keeps it."""
    _, deployment = _postgres()
    volume = deployment.volume("pgdata")
    assert volume.plain("name") == "argusai-unit-pgdata"
    assert volume.retain_on_delete
    assert volume.protect
    mounts = deployment.container("postgres").plain("volumes")
    assert mounts[0] == {"volumeName": "argusai-unit-pgdata", "containerPath": DATA_PATH}


def test_unprotected_volume_is_disposable() -> None:
    """`protectData: false`: a disposable stack; destroy deletes the volume along with the secrets."""
    _, deployment = _postgres(protect=False)
    volume = deployment.volume("pgdata")
    assert not volume.retain_on_delete
    assert not volume.protect


def test_container_runs_the_image_by_id_kept_locally() -> None:
    """The container's image is the RemoteImage's id (a tag would replace it on every run)."""
    _, deployment = _postgres()
    (image,) = deployment.of_type(IMAGE)
    assert image.plain("name") == "postgres:16-alpine"
    assert image.plain("keepLocally") is True
    container = deployment.container("postgres")
    assert container.plain("image").startswith("sha256:")
    assert image.urn in container.dependencies


def test_container_contract() -> None:
    """Env, TCP healthcheck, wait, alias, restart policy, no ports, clean stop, replace order."""
    _, deployment = _postgres()
    c = deployment.container("postgres")
    assert c.plain("name") == "argusai-unit-postgres"
    assert c.plain("envs") == ["POSTGRES_USER=argusai", "POSTGRES_PASSWORD=s3cret-pass", "POSTGRES_DB=events"]
    assert c.is_secret("envs")
    assert c.plain("healthcheck")["tests"] == list(healthcheck().test)
    assert 'pg_isready -h 127.0.0.1 -p 5432 -U "$POSTGRES_USER" -d "$POSTGRES_DB"' in healthcheck().test[1]
    assert c.plain("wait") is True
    assert c.plain("waitTimeout") > 0
    assert c.plain("networksAdvanced") == [{"name": "argusai-unit-db", "aliases": ["postgres"]}]
    assert c.plain("restart") == "unless-stopped"
    assert not c.plain("ports")
    assert c.plain("destroyGraceSeconds") > 0
    assert c.plain("stopSignal") == "SIGINT"
    assert c.delete_before_replace


def test_url_is_secret_and_round_trips_hostile_password() -> None:
    """Any password works: it is percent-encoded in the URL and decodes back to itself."""
    url = database_url("argusai", HOSTILE, "argusai", "psycopg")
    parts = urlsplit(url)
    assert parts.scheme == "postgresql+psycopg"  # the driver named: SQLAlchemy's default changes by release
    assert parts.hostname == "postgres"
    assert parts.port == 5432
    assert parts.path == "/argusai"
    assert unquote(parts.password or "") == HOSTILE
    assert unquote(parts.username or "") == "argusai"
    postgres, _ = _postgres()
    resolved = resolve(postgres.url)
    assert resolved.secret
    assert resolved.value.startswith("postgresql+psycopg://argusai:s3cret-pass@postgres:5432/")


@pytest.mark.parametrize("password", [HOSTILE, "a b+c&d=e", "ünïcødé-pässwörd", "quote'\"back\\slash"])
def test_program_round_trips_operator_password(password: str) -> None:
    """Through the whole program: DATABASE_URL decodes to the operator's password, and is secret."""
    deployment = run_program("prod", secrets={"postgresPassword": password})
    url = deployment.container("backend").env()["DATABASE_URL"]
    assert unquote(urlsplit(url).password or "") == password
    assert f"POSTGRES_PASSWORD={password}" in deployment.container("postgres").plain("envs")
    assert deployment.outputs["databaseUrl"].secret
    assert deployment.outputs["databaseUrl"].value == url


def test_first_probe_waits_for_the_server_and_later_probes_check_once(tmp_path: Path) -> None:
    """The healthcheck, run by a real sh with a stand-in pg_isready: healthy the moment the server is."""
    bin_dir = stand_in_programs(tmp_path / "bin", {"pg_isready": FAKE_PG_ISREADY})
    up = tmp_path / "up"
    marker = tmp_path / "ready"
    # The probe's marker moved out of the host's /tmp; everything else as declared.
    probe = healthcheck().test[1].replace(READY_MARKER, str(marker))
    env = {"PATH": path_first(bin_dir), "UP": str(up), "POSTGRES_USER": "u", "POSTGRES_DB": "d"}

    def run() -> subprocess.Popen[str]:
        return subprocess.Popen(["sh", "-c", probe], env=env, stdout=subprocess.PIPE, text=True)  # noqa: S603, S607

    first = run()
    time.sleep(1)
    assert first.poll() is None, "the first probe waits while the server is starting"
    up.touch()
    out, _ = first.communicate(timeout=PROBE_TIMEOUT_SECONDS)
    assert first.returncode == 0
    assert "accepting connections" in out
    assert marker.exists()
    up.unlink()  # the server goes away: a later probe fails at once instead of waiting
    later = run()
    later.communicate(timeout=PROBE_TIMEOUT_SECONDS)
    assert later.returncode == 2


def test_the_data_is_checked_in_the_new_image_before_the_server_is_touched() -> None:
    """The check runs the image about to serve, the data read-only; the server waits for it."""
    _, deployment = _postgres()
    check, server = deployment.container("pgdata-check"), deployment.container("postgres")
    assert check.plain("image") == server.plain("image")
    mounts = {m["containerPath"]: m for m in check.plain("volumes")}
    assert mounts[CHECK_MOUNT]["volumeName"] == "argusai-unit-pgdata"
    assert mounts[CHECK_MOUNT]["readOnly"] is True
    assert check.urn in server.dependencies
    env = check.env()
    assert env["IMAGE"] == "postgres:16-alpine"
    assert env["EXPECTED_PGDATA"] == DATA_PATH


def _check(tmp_path: Path, *, data_major: str | None, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The check script run by a real sh on a data directory of `data_major` (None: empty)."""
    data = tmp_path / "pgdata"
    data.mkdir()
    if data_major is not None:
        (data / "PG_VERSION").write_text(f"{data_major}\n")
    return subprocess.run(  # noqa: S603 - runs our own script
        ["sh", "-c", PGDATA_CHECK.text()],  # noqa: S607 - sh from PATH
        env={
            "PATH": os.environ["PATH"],
            "PGDATA_MOUNT": str(data),
            "EXPECTED_PGDATA": DATA_PATH,
            "IMAGE": "postgres:17",
            "VOLUME": "argusai-unit-pgdata",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.mark.parametrize(("data_major", "ok"), [(None, True), ("17", True), ("15", False)])
def test_data_of_another_major_version_is_refused(tmp_path: Path, data_major: str | None, ok: bool) -> None:
    """Empty or the same major: on. Another: refused, naming both versions and the way back."""
    done = _check(tmp_path, data_major=data_major, env={"PG_MAJOR": "17", "PGDATA": DATA_PATH})
    assert (done.returncode == 0) is ok, done.stderr
    if not ok:
        assert "the data in argusai-unit-pgdata is PostgreSQL 15, and postgres:17 runs PostgreSQL 17" in done.stderr
        assert "set argusai:postgresImage back to a PostgreSQL 15 image" in done.stderr
        # Newer than the data: the way up is named too.
        assert "add 17 to argusai:postgresUpgrades" in done.stderr


def test_an_older_image_than_the_data_gets_only_the_way_back(tmp_path: Path) -> None:
    """PostgreSQL 15 on data of 17: no upgrade goes that way; only the image back."""
    done = _check(tmp_path, data_major="17", env={"PG_MAJOR": "15", "PGDATA": DATA_PATH})
    assert done.returncode == 1
    assert "Set argusai:postgresImage back to a PostgreSQL 17 image" in done.stderr
    assert "postgresUpgrades" not in done.stderr


def test_an_image_of_another_major_than_the_last_upgrade_is_refused(tmp_path: Path) -> None:
    """`postgresUpgrades` ends in 17, the image runs 16: refused before the server or the data is touched."""
    done = _check(tmp_path, data_major=None, env={"PG_MAJOR": "16", "PGDATA": DATA_PATH, "EXPECTED_MAJOR": "17"})
    assert done.returncode == 1
    assert "runs PostgreSQL 16, and argusai:postgresUpgrades ends in 17" in done.stderr


def test_an_upgrade_adds_a_retained_volume_and_a_step_before_the_server() -> None:
    """`postgresUpgrades: [17]`: the new volume serves, the old stays; `pg-upgrade` runs before the server."""
    _, deployment = _postgres(upgrades=(17,))
    old, new = deployment.volume("pgdata"), deployment.volume("pgdata-17")
    assert old.protect
    assert new.retain_on_delete
    assert new.protect
    server = deployment.container("postgres")
    assert server.plain("volumes")[0] == {"volumeName": "argusai-unit-pgdata-17", "containerPath": DATA_PATH}
    upgrade = deployment.container("pg-upgrade")
    assert upgrade.urn in server.dependencies
    assert deployment.container("pgdata-check").urn in upgrade.dependencies
    mounts = {m["volumeName"]: m for m in upgrade.plain("volumes")}
    assert mounts["argusai-unit-pgdata"]["readOnly"] is True
    assert "readOnly" not in mounts["argusai-unit-pgdata-17"] or not mounts["argusai-unit-pgdata-17"]["readOnly"]
    env = upgrade.env()
    assert (env["TARGET_MAJOR"], env["PGHOST"], env["PGPASSWORD"]) == ("17", "postgres", "s3cret-pass")
    assert upgrade.is_secret("envs")
    assert [n["name"] for n in upgrade.plain("networksAdvanced")] == ["argusai-unit-db"]
    assert deployment.container("pgdata-check").env()["EXPECTED_MAJOR"] == "17"


def test_the_major_comes_from_the_server_binary_without_pg_major(tmp_path: Path) -> None:
    """An image without the official PG_MAJOR: `postgres --version` says it."""
    bin_dir = stand_in_programs(tmp_path / "bin", {"postgres": "echo 'postgres (PostgreSQL) 16.4'\n"})
    done = _check(tmp_path, data_major="15", env={"PATH": path_first(bin_dir)})
    assert done.returncode == 1
    assert "runs PostgreSQL 16" in done.stderr


def test_postgres_18s_layout_is_refused_clearly(tmp_path: Path) -> None:
    """PostgreSQL 18's images keep their data in /var/lib/postgresql/18/docker: an empty server beside the data."""
    done = _check(tmp_path, data_major="17", env={"PG_MAJOR": "18", "PGDATA": "/var/lib/postgresql/18/docker"})
    assert done.returncode == 1
    assert "keeps its data in /var/lib/postgresql/18/docker" in done.stderr

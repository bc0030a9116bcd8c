"""Backups: declared per mode, and the scripts they run really back up, rename and prune."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path
from types import ModuleType

import pytest

from components.backup import STATUS_DIR, backup_healthcheck
from components.scripts import IN_CONTAINER, PG_BACKUP
from testkit.harness import CONTAINER, Deployment, run_program
from testkit.stand_ins import path_first, stand_in_programs

SCRIPTS = Path(__file__).resolve().parent.parent / "components" / "scripts"
WAIT_SECONDS = 10
# Rows of 1 KB before the writer starts: a database of about 6,000 pages (24 MB), many steps for a
# stepwise copy, a few tenths of a second for one copy.
PREFILL_ROWS = 20000
# A one-step copy of this database takes milliseconds; a copy that restarts forever never ends.
BACKUP_BOUND_SECONDS = 30


def _sqlite_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sqlite_backup", SCRIPTS / "sqlite_backup.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_postgres_backup_declared(prod: Deployment) -> None:
    """pg_dump from the postgres image, on the database network only, password secret."""
    backup = prod.container("backup")
    assert backup.plain("image") == prod.container("postgres").plain("image")
    assert backup.plain("entrypoints") == ["sh", f"{IN_CONTAINER}/pg_backup.sh"]
    assert "pg_dump --format=custom" in backup.uploaded()[f"{IN_CONTAINER}/pg_backup.sh"]
    assert [n["name"] for n in backup.plain("networksAdvanced")] == ["argusai-prod-db"]
    env = prod.container("backup").env()
    assert env["PGHOST"] == "postgres"
    assert env["PGPASSWORD"]
    assert env["BACKUP_KEEP"] == "14"
    assert backup.is_secret("envs")
    # Once the server has the stack's password (the role step follows the server).
    assert prod.container("postgres-role").urn in backup.dependencies
    volume = prod.volume("backups")
    assert volume.retain_on_delete
    assert volume.plain("name") == "argusai-prod-backups"
    assert prod.outputs["backupVolume"].value == "argusai-prod-backups"


def test_sqlite_backup_declared(embedded: Deployment) -> None:
    """SQLite online backup from the backend image, sharing its data volume, with no network."""
    backup = embedded.container("backup")
    assert backup.plain("image") == embedded.container("backend").plain("image")
    assert backup.plain("entrypoints") == ["python", "-m", "sqlite_backup"]
    assert "backup(" in backup.uploaded()[f"{IN_CONTAINER}/sqlite_backup.py"]
    assert backup.plain("networkMode") == "none"
    assert not backup.plain("networksAdvanced")
    mounts = {m["containerPath"]: m["volumeName"] for m in backup.plain("volumes")}
    assert mounts == {"/backups": "argusai-embedded-backups", "/app/data": "argusai-embedded-data"}
    env = embedded.container("backup").env()
    assert env["BACKUP_INTERVAL_HOURS"] == "24"
    assert env["BACKUP_KEEP"] == "7"
    assert embedded.container("backend").urn in backup.dependencies


def test_backups_can_be_disabled_and_keep_their_volume() -> None:
    """`backupEnabled: false` declares no backup container; the volume (and the backups in it) stays."""
    deployment = run_program("embedded", {"backupEnabled": False})
    assert not [r for r in deployment.of_type(CONTAINER) if r.name == "backup-container"]
    assert deployment.volume("backups").protect
    assert deployment.outputs["backupVolume"].value == "argusai-embedded-backups"


def test_sqlite_backup_finishes_and_is_consistent_under_a_steady_writer(tmp_path: Path) -> None:
    """A backup taken while a writer commits as fast as it can finishes, and holds a prefix of the writes.

    The database spans many pages, so a copy in steps would see a write between two of them and start
    over, again and again: it must finish within BACKUP_BOUND_SECONDS all the same.
    """
    script = _sqlite_script()
    source = tmp_path / "app.db"
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, note TEXT)")
        db.executemany("INSERT INTO events (note) VALUES (?)", (("x" * 1000,) for _ in range(PREFILL_ROWS)))
    stop, written = threading.Event(), threading.Event()

    def writer() -> None:
        with sqlite3.connect(source, timeout=WAIT_SECONDS) as db:
            # Commits without fsync: as many writes as the machine allows, however slow its disk.
            db.execute("PRAGMA synchronous=OFF")
            while not stop.is_set():
                db.execute("INSERT INTO events (note) VALUES (?)", ("x" * 200,))
                db.commit()
                written.set()

    out = tmp_path / "backups"
    out.mkdir()
    result: list[str | None] = []
    thread = threading.Thread(target=writer)
    thread.start()
    # A daemon: were the copy never to finish, the test fails here instead of hanging the run.
    copier = threading.Thread(target=lambda: result.append(script.backup(str(source), str(out), keep=3)), daemon=True)
    try:
        assert written.wait(WAIT_SECONDS)
        copier.start()
        copier.join(BACKUP_BOUND_SECONDS)
        finished = not copier.is_alive()
    finally:
        stop.set()
        thread.join()
        copier.join(WAIT_SECONDS) if copier.is_alive() else None
    assert finished, f"the backup did not finish within {BACKUP_BOUND_SECONDS} s under a steady writer"
    (path,) = result
    with sqlite3.connect(path) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        copied = copy.execute("SELECT count(*), max(id) FROM events").fetchone()
    assert copied[0] > PREFILL_ROWS, "the writes made before the backup began are in it"
    assert copied[0] == copied[1], "a prefix of the writes, with no gap"
    assert not list(out.glob(".*partial"))


def test_sqlite_backup_gives_up_on_a_database_that_stays_locked(tmp_path: Path) -> None:
    """A source that writers never leave free fails the backup after the lock wait, leaving nothing behind."""
    script = _sqlite_script()
    source, out = _empty_database(tmp_path)
    holder = sqlite3.connect(source, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="stayed locked"):
            script.backup(str(source), str(out), keep=3, lock_wait_seconds=1)
        waited = time.monotonic() - started
    finally:
        holder.close()
    assert 1 <= waited < WAIT_SECONDS
    assert list(out.iterdir()) == []


def _empty_database(tmp_path: Path) -> tuple[Path, Path]:
    """An empty SQLite database and an empty backup directory."""
    source, out = tmp_path / "app.db", tmp_path / "b"
    sqlite3.connect(source).close()
    out.mkdir()
    return source, out


def test_sqlite_backup_prunes_to_keep(tmp_path: Path) -> None:
    """Only the newest `keep` copies remain."""
    script = _sqlite_script()
    source, out = _empty_database(tmp_path)
    for stamp in ("20200101T000000Z", "20210101T000000Z", "20220101T000000Z"):
        (out / f"argusai-{stamp}.sqlite3").write_bytes(b"old")
    newest = script.backup(str(source), str(out), keep=2)
    assert sorted(p.name for p in out.iterdir()) == sorted([Path(newest).name, "argusai-20220101T000000Z.sqlite3"])


def test_sqlite_backup_skips_missing_database(tmp_path: Path) -> None:
    """Before the backend's first start there is nothing to copy, and nothing is written."""
    assert _sqlite_script().backup(str(tmp_path / "absent.db"), str(tmp_path), keep=1) is None
    assert list(tmp_path.iterdir()) == []


# The loop reads each dump's table of contents back before it counts: a dump with content passes here.
FAKE_PG_RESTORE = 'for a; do case "$a" in --list) ;; *) [ -s "$a" ] || exit 1;; esac; done\n'
FAKE_PG_DUMP = 'for a; do case "$a" in --file=*) echo dump > "${a#--file=}";; esac; done\n'
EMPTY_PG_DUMP = 'for a; do case "$a" in --file=*) : > "${a#--file=}";; esac; done\n'
FAILING_PG_DUMP = 'for a; do case "$a" in --file=*) echo half > "${a#--file=}";; esac; done\nexit 1\n'
#: What the PostgreSQL loop logs last in a round: a backup written, one failed, none due.
ROUND_ENDS = ("backup: wrote", "backup: pg_dump failed", "next one when it is due")
#: `date`'s format for the time in a status file (the backup's own name uses another).
STATUS_DATE_FORMAT = "+%Y-%m-%dT%H:%M:%SZ"
LONG_AGO = 946684800  # 2000-01-01, as an mtime: far older than any interval


def _wait_for_line(log: Path, text: str, count: int = 1) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while log.read_text().count(text) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_text().count(text) >= count, f"no {text!r} in: {log.read_text()}"


def _wait_for_any_line(log: Path, texts: tuple[str, ...]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not any(text in log.read_text() for text in texts) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(text in log.read_text() for text in texts), f"none of {texts} in: {log.read_text()}"


def _run_pg_script(
    tmp_path: Path, pg_dump_body: str, keep: int, *, recent: bool = False, hup: bool = False, slow_status: bool = False
) -> tuple[Path, str]:
    """Run the real backup loop with a stand-in pg_dump on PATH; stop it after its first round.

    Two earlier backups lie in the volume, old ones unless `recent`. With `hup`, "back up now" is
    requested once the loop has started. With `slow_status`, writing the outcome's status takes a second
    (its timestamp comes from a slow `date`).
    """
    sh = shutil.which("sh")
    if sh is None:
        pytest.skip("no sh on this machine")
    backups, log = tmp_path / "backups", tmp_path / "log"
    bin_dir = _fake_pg_dump(tmp_path, pg_dump_body)
    if slow_status:
        slow_date = f'case "$2" in {STATUS_DATE_FORMAT}) sleep 1;; esac\nexec {shutil.which("date")} "$@"\n'
        stand_in_programs(bin_dir, {"date": slow_date})
    backups.mkdir()
    for stamp in ("20000101T000000Z", "20010101T000000Z"):
        old = backups / f"argusai-{stamp}.dump"
        old.write_bytes(b"old")
        if not recent:
            os.utime(old, (LONG_AGO, LONG_AGO))
    (backups / ".argusai-19990101T000000Z.dump.partial").write_bytes(b"stale")
    env = {
        "PATH": path_first(bin_dir),
        "BACKUP_DIR": str(backups),
        "BACKUP_INTERVAL_HOURS": "1",
        "BACKUP_KEEP": str(keep),
        "BACKUP_STATUS_DIR": str(tmp_path / "status"),
    }
    with log.open("w") as sink:
        # Own process group, so the loop's background `sleep` is stopped with it.
        proc = subprocess.Popen(  # noqa: S603 - runs our own script
            [sh, "-c", PG_BACKUP.text()], env=env, stdout=sink, stderr=sink, start_new_session=True
        )
        # The round's outcome (a cause may be logged before it, while its status is still being written).
        _wait_for_any_line(log, ROUND_ENDS)
        if hup:
            # Twice in a row: the second must not overwrite the first (one-second names).
            for count in (1, 2):
                proc.send_signal(signal.SIGHUP)
                _wait_for_line(log, "backup: wrote", count)
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=WAIT_SECONDS) == 0, "the loop must stop promptly and cleanly on SIGTERM"
    return backups, log.read_text()


def test_pg_backup_renames_complete_dump_and_prunes(tmp_path: Path) -> None:
    """Due at start: a finished dump is renamed into place, stale partials cleared, only `keep` remain.

    Reported as the last success, clearing an earlier failure.
    """
    (tmp_path / "status").mkdir()
    (tmp_path / "status" / "failed").write_text("an earlier failure")
    backups, log = _run_pg_script(tmp_path, FAKE_PG_DUMP, keep=2)
    names = sorted(p.name for p in backups.iterdir())
    assert "backup: wrote" in log
    assert not (tmp_path / "status" / "failed").exists(), "a success clears the last failure"
    assert names[1] in (tmp_path / "status" / "succeeded").read_text()
    assert len(names) == 2, names
    assert names[0] == "argusai-20010101T000000Z.dump"
    assert names[1].startswith("argusai-2")
    assert (backups / names[1]).read_text() == "dump\n"


def test_pg_backup_reports_its_outcome_before_it_logs_it(tmp_path: Path) -> None:
    """Whoever sees "backup: wrote" in the log finds the status already saying so (here: the loop stopped then)."""
    (tmp_path / "status").mkdir()
    (tmp_path / "status" / "failed").write_text("an earlier failure")
    _run_pg_script(tmp_path, FAKE_PG_DUMP, keep=2, slow_status=True)
    assert (tmp_path / "status" / "succeeded").exists()
    assert not (tmp_path / "status" / "failed").exists()


def test_sqlite_backup_reports_its_outcome_before_it_logs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same for the SQLite loop: nothing is logged about a backup before its status is written."""
    module = _sqlite_script()
    source = tmp_path / "app.db"
    with closing(sqlite3.connect(source)) as db:
        db.execute("CREATE TABLE t (x)")
        db.commit()
    (tmp_path / "backups").mkdir()
    logged_before: list[str] = []
    report = module.report

    def observed(status_dir: str | None, outcome: str, text: str) -> None:
        logged_before.append(capsys.readouterr().out)
        report(status_dir, outcome, text)

    module.report = observed
    module.attempt(str(source), str(tmp_path / "backups"), 2, str(tmp_path / "status"))
    assert logged_before == [""]
    assert "backup: wrote" in capsys.readouterr().out


def test_pg_backup_failure_leaves_no_partial(tmp_path: Path) -> None:
    """A failed pg_dump leaves no file that could be mistaken for a backup, prunes nothing, and is reported."""
    backups, log = _run_pg_script(tmp_path, FAILING_PG_DUMP, keep=1)
    assert "pg_dump failed" in log
    assert "pg_dump failed" in (tmp_path / "status" / "failed").read_text()
    assert not (tmp_path / "status" / "succeeded").exists()
    assert sorted(p.name for p in backups.iterdir()) == [
        "argusai-20000101T000000Z.dump",
        "argusai-20010101T000000Z.dump",
    ]


def test_pg_dump_that_wrote_nothing_and_said_nothing_is_no_backup(tmp_path: Path) -> None:
    """pg_dump on a full volume: an empty file and exit status 0. Read back, it fails, and is reported."""
    # A slow status write: the cause is logged before it, and the loop must be left to report it.
    backups, log = _run_pg_script(tmp_path, EMPTY_PG_DUMP, keep=1, slow_status=True)
    assert "the dump cannot be read back" in log
    assert sorted(p.name for p in backups.iterdir()) == [
        "argusai-20000101T000000Z.dump",
        "argusai-20010101T000000Z.dump",
    ]
    assert "free on the backups volume" in (tmp_path / "status" / "failed").read_text()


def test_pg_restart_with_recent_backup_takes_none(tmp_path: Path) -> None:
    """A restart (or a redeploy after data loss) does not push good backups out with a new dump."""
    backups, log = _run_pg_script(tmp_path, FAKE_PG_DUMP, keep=2, recent=True)
    assert "next one when it is due" in log
    assert "backup: wrote" not in log
    assert len(list(backups.glob("argusai-*.dump"))) == 2


def test_pg_sighup_backs_up_now_without_name_clash(tmp_path: Path) -> None:
    """SIGHUP takes a backup at once; two in the same second get distinct names."""
    backups, log = _run_pg_script(tmp_path, FAKE_PG_DUMP, keep=5, recent=True, hup=True)
    assert log.count("backup: wrote") == 2
    assert len(list(backups.glob("argusai-*.dump"))) == 4


def test_sqlite_due_only_when_newest_backup_is_old(tmp_path: Path) -> None:
    """The same schedule for SQLite: due with no backup or an old one, not with a recent one."""
    script = _sqlite_script()
    hour = 3600
    assert script.is_due(str(tmp_path), hour)
    backup = tmp_path / "argusai-20000101T000000Z.sqlite3"
    backup.write_bytes(b"x")
    assert not script.is_due(str(tmp_path), hour)
    os.utime(backup, (LONG_AGO, LONG_AGO))
    assert script.is_due(str(tmp_path), hour)
    (tmp_path / ".argusai-20990101T000000Z.sqlite3.partial").write_bytes(b"x")
    assert script.is_due(str(tmp_path), hour), "a partial file is not a backup"


def test_sqlite_backups_in_one_second_do_not_clash(tmp_path: Path) -> None:
    """Two backups in quick succession are two files."""
    script = _sqlite_script()
    source, out = _empty_database(tmp_path)
    first, second = script.backup(str(source), str(out), keep=5), script.backup(str(source), str(out), keep=5)
    assert first != second
    assert len(list(out.glob("argusai-*.sqlite3"))) == 2


def _fake_pg_dump(tmp_path: Path, body: str) -> Path:
    """A directory for PATH with a stand-in pg_dump (`body`) and pg_restore (reads a non-empty dump)."""
    return stand_in_programs(tmp_path / "bin", {"pg_dump": body, "pg_restore": FAKE_PG_RESTORE})


@pytest.mark.parametrize(("pg_dump_body", "status"), [(FAKE_PG_DUMP, 0), (FAILING_PG_DUMP, 1)])
def test_pg_pre_upgrade_backup_is_one_named_dump_and_fails_the_step(
    tmp_path: Path, pg_dump_body: str, status: int
) -> None:
    """One-shot mode (the schema gate's backup step): one `pre-upgrade-*` dump, nothing pruned, pg_dump's status."""
    backups = tmp_path / "backups"
    backups.mkdir()
    old = backups / "pre-upgrade-20000101T000000Z.dump"
    old.write_bytes(b"old")
    env = {
        "PATH": path_first(_fake_pg_dump(tmp_path, pg_dump_body)),
        "BACKUP_DIR": str(backups),
        "BACKUP_ONCE": "1",
        "BACKUP_PREFIX": "pre-upgrade",
        "BACKUP_KEEP": "1",  # the loop's setting, if present, does not prune pre-upgrade dumps
    }
    done = subprocess.run(  # noqa: S603 - runs our own script
        ["sh", "-c", PG_BACKUP.text()],  # noqa: S607 - sh from PATH
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )
    assert done.returncode == status, done.stderr
    names = sorted(p.name for p in backups.iterdir())
    if status:
        assert names == [old.name], "a failed dump leaves nothing that looks like a backup"
    else:
        assert len(names) == 2
        assert names[0] == old.name
        assert names[1].startswith("pre-upgrade-2")


def test_sqlite_pre_upgrade_backup_is_one_named_copy_and_fails_the_step(tmp_path: Path) -> None:
    """One-shot mode: a `pre-upgrade-*` copy with every row; no database yet is fine; a broken one fails."""
    source, out = _empty_database(tmp_path)
    with sqlite3.connect(source) as db:
        db.execute("CREATE TABLE users (name TEXT)")
        db.execute("INSERT INTO users VALUES ('admin')")
    env = {"BACKUP_ONCE": "1", "BACKUP_PREFIX": "pre-upgrade", "BACKUP_DIR": str(out), "PATH": os.environ["PATH"]}

    def run(db_path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - runs our own script
            [sys.executable, str(SCRIPTS / "sqlite_backup.py")],
            env={**env, "BACKUP_SOURCE": str(db_path)},
            capture_output=True,
            text=True,
            timeout=WAIT_SECONDS,
            check=False,
        )

    assert run(source).returncode == 0
    (copy,) = out.iterdir()
    assert copy.name.startswith("pre-upgrade-")
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT name FROM users").fetchall() == [("admin",)]
    assert run(tmp_path / "absent.db").returncode == 0  # a first deploy: nothing to copy yet
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"not a database" * 100)
    failed = run(broken)
    assert failed.returncode == 1
    assert "backup: failed" in failed.stderr
    assert [p.name for p in out.iterdir() if not p.name.startswith("pre-upgrade-")] == []


def _health(status_dir: Path, interval_hours: int = 1) -> subprocess.CompletedProcess[str]:
    """The backup container's own healthcheck, run by a real sh against `status_dir`."""
    test = backup_healthcheck(interval_hours).test
    assert test[0] == "CMD-SHELL"
    return subprocess.run(  # noqa: S603 - runs our own healthcheck
        ["sh", "-c", test[1].replace(STATUS_DIR, str(status_dir))],  # noqa: S607 - sh from PATH
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )


def test_sqlite_backup_outcome_turns_the_health(tmp_path: Path) -> None:
    """A failed backup (a full or unwritable volume) turns the health unhealthy with its cause; the next success heals.

    Before any backup (nothing to copy yet) the container is healthy; a success older than the interval
    plus the slack is overdue.
    """
    script = _sqlite_script()
    source, out = _empty_database(tmp_path)
    status = tmp_path / "status"
    assert _health(status).returncode == 0, "no outcome yet: healthy"

    script.attempt(str(source), str(tmp_path / "gone"), 3, str(status))  # the directory cannot be written
    failed = _health(status)
    assert failed.returncode == 1
    assert "unable to open database file" in failed.stdout, "the probe's output names the cause"

    script.attempt(str(source), str(out), 3, str(status))
    assert _health(status).returncode == 0
    assert not (status / "failed").exists()
    (newest,) = out.glob("argusai-*.sqlite3")
    assert newest.name in (status / "succeeded").read_text()

    os.utime(status / "succeeded", (LONG_AGO, LONG_AGO))
    overdue = _health(status)
    assert overdue.returncode == 1
    assert "no backup succeeded for 120 minutes" in overdue.stdout


@pytest.mark.parametrize("deployment", ["prod", "embedded"])
def test_backup_container_has_a_healthcheck_of_its_own(deployment: str, request: pytest.FixtureRequest) -> None:
    """Never the image's own (the backend image's probes a server this container does not run)."""
    backup = request.getfixturevalue(deployment).container("backup")
    health = backup.plain("healthcheck")
    assert health["tests"][0] == "CMD-SHELL"
    assert f"{STATUS_DIR}/failed" in health["tests"][1]
    assert backup.env()["BACKUP_STATUS_DIR"] == STATUS_DIR

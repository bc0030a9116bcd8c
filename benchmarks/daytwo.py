"""Day-two benchmark: a stack holding 100,000 events upgraded from PostgreSQL 15 to 17, then its password rotated.

The real release gets BENCH_EVENTS events on SQLite (the data move's benchmark data, `benchmarks/move.py`),
moves to PostgreSQL 15 (bookworm's), then `up` with `postgresImage` 17 (trixie's) and `postgresUpgrades:
[17]` while a client writes and reads as in the move benchmark. Prints:

- the whole `up`, and the time the backend does not answer (the longest gap between two successful
  `/health` reads) and does not take writes (between two successful writes, and the writes that failed);
- the `pg-upgrade` step's own line: rows, tables, the dump and restore's seconds;
- the floor: the same `pg_dump --format=custom | pg_restore --single-transaction`, by hand, alone, from a
  PostgreSQL 15 server on a copy of the old volume into a fresh PostgreSQL 17 server, and the ratio of the
  step's dump and restore to it (goal: at most 1.5);
- then a new `postgresPassword` by `up` under the same client: the longest gaps, against one restart of the
  backend alone (goal: one restart, no more).

Needs the images (`python -m testkit.images.build --only postgres --only postgres17 --only argusai-backend`,
ARGUSAI_SOURCE set). Run: `python -m benchmarks.daytwo`.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Callable

import docker

from benchmarks.move import EVENTS, Client, filled_stack, program_overrides
from components.naming import LABEL_ROLE, LABEL_STACK
from testkit.applier import Applier
from testkit.cleanup import remove_stack
from testkit.harness import run_program
from testkit.images.ensure import ensure_images
from testkit.images.recipes import ARGUSAI_BACKEND, POSTGRES, POSTGRES_17
from testkit.net import free_port
from testkit.oneoff import run_once
from testkit.release_api import Session, longest_gap, wait_health

ENGINE_TIMEOUT_SECONDS = 300
READY_TIMEOUT_SECONDS = 120
UPGRADE_LOG = "/backups/steps/pg-upgrade.log"
FLOOR_PASSWORD = "floor-bench-password"  # noqa: S105 - throwaway servers of the benchmark
NEW_PASSWORD = "rotated-bench-password"  # noqa: S105 - the benchmark stack's
# The step's own figure: "... restored in 12.3 s".
STEP_SECONDS = re.compile(r"restored in ([0-9.]+) s")
# The floor, timed inside the container so that only the dump and restore count.
FLOOR = (
    "started=$(date +%s.%N); "
    'pg_dump --format=custom -h "$OLD" -U argusai -d argusai | '
    'pg_restore -h "$NEW" -U argusai -d argusai --single-transaction --exit-on-error && '
    'awk -v a="$started" -v b="$(date +%s.%N)" \'BEGIN { printf "%.2f\\n", b - a }\''
)


def _server(client: docker.DockerClient, stack: str, image: str, name: str, network: str, volume: str) -> None:
    """A throwaway PostgreSQL server of the benchmark, `name` on `network`, its data in `volume`."""
    client.containers.run(
        image,
        name=f"argusai-{stack}-{name}",
        detach=True,
        network=network,
        environment={"POSTGRES_USER": "argusai", "POSTGRES_DB": "argusai", "POSTGRES_PASSWORD": FLOOR_PASSWORD},
        volumes={volume: {"bind": "/var/lib/postgresql/data", "mode": "rw"}},
        labels={LABEL_STACK: stack, LABEL_ROLE: "oneoff"},
    )
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    container = client.containers.get(f"argusai-{stack}-{name}")
    while container.exec_run(["pg_isready", "-h", "127.0.0.1", "-U", "argusai"]).exit_code != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer within {READY_TIMEOUT_SECONDS} s")
        time.sleep(0.5)


def floor_seconds(client: docker.DockerClient, stack: str, old_volume: str) -> float:
    """The same dump and restore by hand, alone: 15 on a copy of the old volume into a fresh 17."""
    labels = {LABEL_STACK: stack, LABEL_ROLE: "oneoff"}
    network = client.networks.create(f"argusai-{stack}-floor", labels=labels).name
    copy = client.volumes.create(f"argusai-{stack}-floor-old", labels=labels).name
    fresh = client.volumes.create(f"argusai-{stack}-floor-new", labels=labels).name
    copied = run_once(
        client,
        POSTGRES.tag,
        command=["sh", "-c", "cp -a /from/. /to/"],
        volumes={old_volume: {"bind": "/from", "mode": "ro"}, copy: {"bind": "/to", "mode": "rw"}},
        labels=labels,
    )
    assert copied.code == 0, copied.output[-2000:]
    _server(client, stack, POSTGRES.tag, "floor-old", network, copy)
    # The copy's role has the stack's password: the floor's, over the trusted socket (a read-only database
    # by default since the upgrade, so this session says otherwise first).
    set_password = client.containers.get(f"argusai-{stack}-floor-old").exec_run(
        [
            "psql",
            "-h",
            "/var/run/postgresql",
            "-U",
            "argusai",
            "-d",
            "argusai",
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            "SET default_transaction_read_only = off",
            "-c",
            f"ALTER ROLE argusai PASSWORD '{FLOOR_PASSWORD}'",
        ]
    )
    assert set_password.exit_code == 0, set_password.output.decode(errors="replace")
    _server(client, stack, POSTGRES_17.tag, "floor-new", network, fresh)
    # The upgrade left the old database read-only by default: the floor's pg_dump only reads, as the step's.
    timed = run_once(
        client,
        POSTGRES_17.tag,
        command=["sh", "-c", FLOOR],
        network=network,
        # The two servers by their container names (the network's DNS).
        environment={
            "PGPASSWORD": FLOOR_PASSWORD,
            "OLD": f"argusai-{stack}-floor-old",
            "NEW": f"argusai-{stack}-floor-new",
        },
        labels=labels,
    )
    assert timed.code == 0, timed.output[-2000:]
    return float(timed.stdout.strip().splitlines()[-1])


def _restart(client: docker.DockerClient, name: str, base_url: str) -> None:
    client.containers.get(name).restart(timeout=30)
    wait_health(base_url)


def _gaps(session: Session, change: Callable[[], object]) -> tuple[float, float, int]:
    """(longest gap in reads, in writes, failed writes) while `change` runs under the client, and after."""
    load = Client(session.base_url, session.token)
    thread = threading.Thread(target=load.run)
    thread.start()
    time.sleep(2)  # a baseline of successful writes
    started = time.monotonic()
    try:
        change()
        wait_health(session.base_url)
        time.sleep(2)
    finally:
        load.stop.set()
        thread.join()
    ended = time.monotonic()
    return longest_gap(load.reads_ok, started, ended), longest_gap(load.writes_ok, started, ended), load.writes_failed


def main() -> None:
    """Fill, move to 15, upgrade to 17 under load, time the floor, print the figures."""
    client = docker.from_env(timeout=ENGINE_TIMEOUT_SECONDS)
    ensure_images(recipes=(POSTGRES, POSTGRES_17, ARGUSAI_BACKEND))
    stack = f"benchdaytwo{secrets.token_hex(3)}"
    port = free_port()
    base = program_overrides(port)
    applier = Applier(client)
    image_ids = lambda ref: client.images.get(ref).id  # noqa: E731 - the engine's ids, as the provider reads them
    try:
        state, session = filled_stack(client, applier, stack, port)
        on_15 = {**base, "database": "postgres"}
        state = applier.up(run_program(stack, on_15, image_ids=image_ids, prior=state), state)
        wait_health(session.base_url)
        print(f"events: {EVENTS} on PostgreSQL 15", flush=True)

        load = Client(session.base_url, session.token)
        thread = threading.Thread(target=load.run)
        thread.start()
        time.sleep(2)  # a baseline of successful writes before the upgrade
        upgraded_config = {**on_15, "postgresImage": POSTGRES_17.tag, "postgresUpgrades": [17]}
        upgraded = run_program(stack, upgraded_config, image_ids=image_ids, prior=state)
        started = time.monotonic()
        state = applier.up(upgraded, state)
        up_seconds = time.monotonic() - started
        wait_health(session.base_url)
        time.sleep(2)  # writes land on 17
        load.stop.set()
        thread.join()
        ended = time.monotonic()

        step_line = run_once(
            client,
            POSTGRES.tag,
            command=["tail", "-n", "1", UPGRADE_LOG],
            volumes={f"argusai-{stack}-backups": {"bind": "/backups", "mode": "ro"}},
            labels={LABEL_STACK: stack, LABEL_ROLE: "oneoff"},
        ).stdout.strip()
        print(f"step: {step_line}")
        print(f"up 15 -> 17: {up_seconds:.1f} s")
        read_gap = longest_gap(load.reads_ok, started - 2, ended)
        write_gap = longest_gap(load.writes_ok, started - 2, ended)
        print(
            f"backend: longest gap between two successful GET /health {read_gap:.1f} s; between two "
            f"successful writes {write_gap:.1f} s, {load.writes_failed} failed"
        )
        rotation = _gaps(
            session,
            lambda: applier.up(
                run_program(
                    stack, upgraded_config, {"postgresPassword": NEW_PASSWORD}, image_ids=image_ids, prior=state
                ),
                state,
            ),
        )
        restart = _gaps(session, lambda: _restart(client, f"argusai-{stack}-backend", session.base_url))
        print(
            f"password rotation: longest gap in reads {rotation[0]:.1f} s, in writes {rotation[1]:.1f} s "
            f"({rotation[2]} failed); one restart of the backend alone: {restart[0]:.1f} s, {restart[1]:.1f} s "
            f"({restart[2]} failed)"
        )
        match = STEP_SECONDS.search(step_line)
        floor = floor_seconds(client, stack, f"argusai-{stack}-pgdata")
        print(f"floor: pg_dump | pg_restore by hand, alone, 15 -> 17: {floor:.2f} s ({EVENTS / floor:,.0f} events/s)")
        if match:
            step = float(match.group(1))
            print(
                f"step's dump and restore: {step:.1f} s ({EVENTS / step:,.0f} events/s), {step / floor:.2f}x the floor"
            )
    finally:
        remove_stack(client, stack)


if __name__ == "__main__":
    main()

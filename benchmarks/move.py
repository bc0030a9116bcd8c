"""Data-move benchmark: a SQLite stack of realistic size moved into PostgreSQL by one config change and `up`.

The real release on SQLite (gate on, as shipped) gets BENCH_EVENTS events (default 100,000: a year of a
few cameras), copies of one event made through its API; then the stack switches to `database: postgres`
while a client keeps writing (a settings update every POLL_SECONDS) and reading (`/health`) through the
published port. Prints:

- the rows moved and the move's own figures (its report: seconds, rows per second, how long the SQLite
  write lock was held);
- the write pause as a user sees it: the longest gap between two successful writes, and the writes that
  failed; the longest gap between two successful reads;
- the whole `up` (PostgreSQL start, backups, gate, move, new backend).

Needs the images (`python -m testkit.images.build --only postgres --only argusai-backend`, ARGUSAI_SOURCE
set). Run: `python -m benchmarks.move`.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import docker

from benchmarks import argusai
from components.naming import LABEL_ROLE, LABEL_STACK
from testkit import plan as planning
from testkit.applier import Applier
from testkit.cleanup import remove_stack
from testkit.harness import run_program
from testkit.images.ensure import ensure_images
from testkit.images.recipes import ARGUSAI_BACKEND, POSTGRES
from testkit.net import LOOPBACK, free_port
from testkit.oneoff import run_once
from testkit.release_api import HTTP_OK, Session, call, longest_gap, seed, wait_health

EVENTS = int(os.environ.get("BENCH_EVENTS", "100000"))
POLL_SECONDS = 0.2
ENGINE_TIMEOUT_SECONDS = 300
MOVE_REPORT = "/backups/steps/data-move.report"
# Copies of the one event the API made, inserted as the release stores them (the FTS triggers fire).
FILL = """
import datetime, os, sqlite3, uuid
n = int(os.environ["EVENTS"])
c = sqlite3.connect("/app/data/app.db")
c.row_factory = sqlite3.Row
row = dict(c.execute("SELECT * FROM events LIMIT 1").fetchone())
cols = list(row)
start = datetime.datetime(2025, 1, 1)
def rows():
    for i in range(n):
        r = dict(row, id=str(uuid.uuid4()), description=f"{row['description']} #{i}")
        r["timestamp"] = (start + datetime.timedelta(seconds=300 * i)).strftime("%Y-%m-%d %H:%M:%S.%f")
        yield tuple(r[k] for k in cols)
c.executemany(f"INSERT INTO events ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows())
c.commit()
print(c.execute("SELECT count(*) FROM events").fetchone()[0])
"""


def program_overrides(port: int) -> dict[str, Any]:
    """The stack before the switch: the real-release benchmark's stack, on SQLite."""
    return {**argusai.release_overrides(port), "database": "sqlite"}


@dataclass
class Client:
    """Writes and reads in a loop while the stack switches; records when each succeeded."""

    base_url: str
    token: str
    writes_ok: list[float] = field(default_factory=list)
    writes_failed: int = 0
    reads_ok: list[float] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Until stopped: a settings update, then `/health`, every POLL_SECONDS."""
        n = 0
        while not self.stop.is_set():
            n += 1
            body = {"system_name": f"bench {n}"}
            if call(self.base_url, "PUT", "/api/v1/system/settings", body, self.token)[0] == HTTP_OK:
                self.writes_ok.append(time.monotonic())
            else:
                self.writes_failed += 1
            if call(self.base_url, "GET", "/health")[0] == HTTP_OK:
                self.reads_ok.append(time.monotonic())
            time.sleep(POLL_SECONDS)


def filled_stack(
    client: docker.DockerClient, applier: Applier, stack: str, port: int
) -> tuple[planning.State, Session]:
    """The release on SQLite, published on `port`, holding EVENTS events (copies of one made through the API)."""
    deployment = run_program(stack, program_overrides(port), image_ids=lambda ref: client.images.get(ref).id)
    state = applier.up(deployment, planning.State())
    base_url = f"http://{LOOPBACK}:{port}"
    wait_health(base_url)
    session = seed(base_url, deployment.outputs["adminPassword"].value)
    begin = time.monotonic()
    filled = run_once(
        client,
        ARGUSAI_BACKEND.tag,
        command=["python", "-c", FILL],
        volumes={f"argusai-{stack}-data": {"bind": "/app/data", "mode": "rw"}},
        environment={"EVENTS": str(EVENTS - 1)},
        labels={LABEL_STACK: stack, LABEL_ROLE: "oneoff"},
    )
    assert filled.code == 0, filled.output[-2000:]
    print(f"events: {filled.stdout.strip()} (filled in {time.monotonic() - begin:.1f} s)", flush=True)
    return state, session


def main() -> None:
    """Fill, switch under load, print the figures."""
    client = docker.from_env(timeout=ENGINE_TIMEOUT_SECONDS)
    ensure_images(recipes=(POSTGRES, ARGUSAI_BACKEND))
    stack = f"benchmove{secrets.token_hex(3)}"
    port = free_port()
    base = program_overrides(port)
    applier = Applier(client)
    try:
        state, session = filled_stack(client, applier, stack, port)
        load = Client(session.base_url, session.token)
        thread = threading.Thread(target=load.run)
        thread.start()
        time.sleep(2)  # a baseline of successful writes before the switch
        switched = run_program(
            stack, {**base, "database": "postgres"}, image_ids=lambda r: client.images.get(r).id, prior=state
        )
        started = time.monotonic()
        state = applier.up(switched, state)
        up_seconds = time.monotonic() - started
        wait_health(session.base_url)
        time.sleep(2)  # writes land on PostgreSQL again
        load.stop.set()
        thread.join()
        ended = time.monotonic()

        report = client.containers.get(f"argusai-{stack}-release-steps").exec_run(["cat", MOVE_REPORT])
        for line in report.output.decode(errors="replace").strip().splitlines():
            print(f"move report: {line}")
        write_gap = longest_gap(load.writes_ok, started - 2, ended)
        read_gap = longest_gap(load.reads_ok, started - 2, ended)
        print(f"up sqlite -> postgres: {up_seconds:.1f} s")
        print(f"writes: longest gap between two successful writes {write_gap:.1f} s, {load.writes_failed} failed")
        print(f"reads: longest gap between two successful GET /health {read_gap:.1f} s")
    finally:
        remove_stack(client, stack)


if __name__ == "__main__":
    main()

"""What healthchecks cost the engine: CPU per probe, and a finished one-shot step's cost while it idles.

Every Docker healthcheck probe is an exec: dockerd, containerd, a shim and runc each do work for it. The
engine's CPU time (user + system, its reaped children included, read from /proc) is sampled around a
window in which one container probes at a fixed interval, and around a window in which a finished step
idles with this program's step healthcheck (`components.step.HEALTHCHECK`) and with the 2 s `test -f`
probe steps had before. Prints milliseconds of engine CPU per probe and per idle minute.

Needs the stand-in backend image (`python -m testkit.images.build --only backend`) and root (to read
the engine's /proc entries). Run: `python -m benchmarks.probes`.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import docker

from components.docker_common import Healthcheck
from components.step import DONE_MARKER, HEALTHCHECK, WRAPPER
from testkit.cleanup import remove_stack
from testkit.images.ensure import ensure_images
from testkit.images.recipes import BACKEND
from testkit.provider import duration_ns

ENGINE_TIMEOUT_SECONDS = 300
ENGINE_PROCESSES = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2")
WINDOW_SECONDS = 30
SETTLE_SECONDS = 5
SECONDS_PER_MINUTE = 60
MILLIS = 1000
# utime, stime, cutime, cstime: fields 14-17 of /proc/<pid>/stat, i.e. the 12th to 15th after the name.
STAT_TIMES = slice(11, 15)
#: The probe steps had before: `test -f` every 2 s for the step's whole life.
OLD_STEP_PROBE = Healthcheck(test=("CMD", "test", "-f", DONE_MARKER), interval=2, timeout=5, retries=1, start_period=0)


def engine_cpu_seconds() -> float:
    """CPU seconds used so far by the engine's processes (and the children they reaped: runc)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited meanwhile
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        if name in ENGINE_PROCESSES:
            ticks += sum(int(field) for field in text[text.rindex(")") + 2 :].split()[STAT_TIMES])
    return ticks / os.sysconf("SC_CLK_TCK")


def _healthcheck(check: Healthcheck) -> dict[str, object]:
    """The Engine API form of a declared healthcheck (nanoseconds), as the provider sends it."""
    args = check.args()
    return {
        "test": list(args.tests),
        "interval": duration_ns(args.interval),
        "timeout": duration_ns(args.timeout),
        "retries": args.retries,
        "start_period": duration_ns(args.start_period),
    }


def window(client: docker.DockerClient, stack: str, check: Healthcheck) -> tuple[float, int]:
    """Run a finished step with `check`; (engine CPU seconds over the window, probes (execs) in it)."""
    container = client.containers.run(
        BACKEND.tag,
        entrypoint=["sh", "-c", WRAPPER, "bench", "true"],
        environment={"STEP_LOG": "/tmp/bench-step.log"},  # noqa: S108 - inside the container
        healthcheck=_healthcheck(check),
        network_mode="none",
        labels={"argusai.stack": stack},
        detach=True,
    )
    try:
        time.sleep(SETTLE_SECONDS)  # done, reported, idling
        since = int(time.time())
        before = engine_cpu_seconds()
        time.sleep(WINDOW_SECONDS)
        used = engine_cpu_seconds() - before
        until = int(time.time())
        # Each probe is an exec: the engine reports its start as an event.
        events = client.events(
            since=since, until=until, decode=True, filters={"container": container.id, "event": "exec_start"}
        )
        return used, sum(1 for _ in events)
    finally:
        container.remove(force=True)


def main() -> None:
    """Measure and print."""
    client = docker.from_env(timeout=ENGINE_TIMEOUT_SECONDS)
    ensure_images(recipes=(BACKEND,))
    stack = f"benchprobes{secrets.token_hex(3)}"
    try:
        before = engine_cpu_seconds()
        time.sleep(WINDOW_SECONDS)
        baseline = engine_cpu_seconds() - before  # the engine with nothing probing
        old_cpu, old_probes = window(client, stack, OLD_STEP_PROBE)
        new_cpu, new_probes = window(client, stack, HEALTHCHECK)
    finally:
        remove_stack(client, stack)
    per_minute = SECONDS_PER_MINUTE / WINDOW_SECONDS * MILLIS
    print(f"engine CPU, nothing probing: {baseline * per_minute:.0f} ms per minute")
    print(f"engine CPU per healthcheck probe (one exec): {(old_cpu - baseline) / max(old_probes, 1) * MILLIS:.0f} ms")
    print(
        f"a finished step idling, old probe (test -f every 2 s): {old_probes} probes in {WINDOW_SECONDS} s, "
        f"{(old_cpu - baseline) * per_minute:.0f} ms of engine CPU per minute"
    )
    print(
        f"a finished step idling, this program's probe: {new_probes} probes in {WINDOW_SECONDS} s, "
        f"{(new_cpu - baseline) * per_minute:.0f} ms of engine CPU per minute"
    )


if __name__ == "__main__":
    main()

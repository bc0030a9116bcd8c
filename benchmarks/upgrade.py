"""Upgrade benchmark: the real backend's image upgraded while a client polls, through the proxy, without it, compose.

The real release (`ARGUSAI_BACKEND`) on SQLite, schema gate on (as users run it), no frontend in this
program's stacks. Once its `/health` answers, a client polls `GET /health` every POLL_SECONDS (one request
at a time), and the backend is upgraded to a new image id: the release's image derived under a new tag
(testkit/images/derive.py), deployed as an operator does it, a second `up` with `backendImage` changed
(the pre-upgrade backup and the gate run first, then the backend is deleted and created again). Three ways:

- proxy: HTTPS on (`tlsHostnames: [argusai.lan]`, the stack's own CA, the Caddy test image), polled at
  `https://argusai.lan:<httpsPort>/health` on loopback, trusting only the exported `tlsCaCertificate`; the
  proxy holds requests while the backend is replaced, so the client waits longer than the proxy holds;
- direct: HTTPS off, polled at the backend's published port;
- compose: the release's `$ARGUSAI_SOURCE/docker-compose.yml` (SQLite, its default), changed only where
  it cannot run here (printed as `compose change:` lines, benchmarks/argusai.py's changes), upgraded as
  compose users do it: the file's backend image changed and `docker-compose up -d` run again; polled at
  the backend's published port. Its ssl profile (nginx) runs only with the nginx image on the engine;
  without it the output says so.

For each: requests sent, requests failed (any answer but 200, or no answer), the longest single request,
the longest gap between two successful answers (from POLL_BASELINE_SECONDS before the upgrade until the
first answer after it, plus the baseline again), and the whole `up` (for this program: the program's run
and the apply; for compose: `docker-compose up -d`). The goal printed: no failed request through the
proxy. `BENCH_RUNS` (default 1) repeats everything and reports medians.

Needs the images (`python -m testkit.images.build --only frontend --only argusai-backend --only caddy`,
ARGUSAI_SOURCE set) and Debian's docker-compose. Run: `python -m benchmarks.upgrade`.
"""

from __future__ import annotations

import base64
import collections
import http.client
import os
import secrets
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import yaml
from docker.errors import NotFound

from benchmarks import argusai
from components.https.caddyfile import HOLD_SECONDS
from testkit import https
from testkit import plan as planning
from testkit.applier import Applier
from testkit.cleanup import remove_stack
from testkit.harness import Deployment, run_program
from testkit.images.derive import derive_image, remove_derived
from testkit.images.ensure import ensure_images
from testkit.images.recipes import ARGUSAI_BACKEND, CADDY, FRONTEND
from testkit.net import LOOPBACK, free_port

#: A cold 2-core machine: creating, stopping and removing containers of a 1 GB image can take a while.
ENGINE_TIMEOUT_SECONDS = 300
#: One `docker-compose up -d` (the first one waits for the backend's healthcheck, every 30 s).
COMPOSE_TIMEOUT_SECONDS = 600
#: The backend's first `/health` 200 after a deploy (the release imports for about 20 s).
READY_TIMEOUT_SECONDS = 300
POLL_SECONDS = 0.15
#: Polling before the upgrade starts and after the first answer once it is done.
POLL_BASELINE_SECONDS = 2
#: Longer than the proxy holds a request: a held request is counted as what the proxy answered.
PROXY_CLIENT_TIMEOUT_SECONDS = HOLD_SECONDS + 30
DIRECT_CLIENT_TIMEOUT_SECONDS = 10
HTTP_OK = 200
HOSTNAME = "argusai.lan"
PROXY, DIRECT, COMPOSE = "proxy", "direct", "compose"
VARIANTS = (PROXY, DIRECT, COMPOSE)
DERIVED_REPOSITORY = "argusai-test/argusai-backend"
#: Lines of the proxy's error log shown when a request failed through it.
PROXY_LOG_LINES = 20


def program_overrides(variant: str, port: int, http_port: int = 0) -> dict[str, Any]:
    """The stack's config: the real release on SQLite, gate on; with `proxy`, HTTPS on `port` and `http_port`."""
    overrides = {**argusai.release_overrides(port), "database": "sqlite"}
    overrides.pop("schemaGate", None)  # the default: on
    if variant == PROXY:
        overrides |= {
            "tlsHostnames": [HOSTNAME],
            "httpsPort": port,
            "httpPort": http_port,
            "proxyImage": CADDY.tag,
        }
        overrides.pop("backendPort")  # unpublished behind the proxy
    return overrides


@dataclass
class Figures:
    """What one upgrade looked like to the polling client."""

    sent: float = 0
    """Requests sent (a median over runs need not be whole)."""
    failed: float = 0
    longest_wait: float = 0.0
    longest_gap: float = 0.0
    up: float = 0.0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    """Failed requests by what they got (a status or an exception's name)."""
    failed_at: list[float] = field(default_factory=list)
    """When each failed request ended, seconds from the upgrade's start."""

    def line(self) -> str:
        """`0 of 812 requests failed, longest wait 24.1 s, longest gap 24.3 s, up 61.2 s`."""
        return (
            f"{self.failed:g} of {self.sent:g} requests failed, longest wait {self.longest_wait:.1f} s, "
            f"longest gap {self.longest_gap:.1f} s, up {self.up:.1f} s"
        )

    def detail(self) -> str:
        """What the failed requests got and when, or nothing."""
        if not self.failed:
            return ""
        kinds = ", ".join(f"{count} {kind}" for kind, count in self.failures.most_common())
        return f" (failed: {kinds}; from {min(self.failed_at):.1f} s to {max(self.failed_at):.1f} s into the up)"


@dataclass
class Poller:
    """One request at a time, every POLL_SECONDS, until stopped; records what each got."""

    get: Callable[[], int]
    """One `GET /health`: its status (raises when nothing answered)."""
    sent: int = 0
    answers: list[tuple[float, float, str]] = field(default_factory=list)
    """(started, ended, "200" or what it got instead), monotonic seconds."""
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        """Poll until stopped."""
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                got = str(self.get())
            except (OSError, http.client.HTTPException) as exc:  # refused, reset, TLS, timed out
                got = type(exc).__name__
            self.answers.append((started, time.monotonic(), got))
            self.stop.wait(POLL_SECONDS)

    def ok_since(self, since: float) -> bool:
        """Whether a request started after `since` got 200."""
        return any(start >= since and got == str(HTTP_OK) for start, _, got in list(self.answers))


def wait_answer(get: Callable[[], int], what: str) -> None:
    """Until `get` answers 200."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        try:
            if get() == HTTP_OK:
                return
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: no /health 200 within {READY_TIMEOUT_SECONDS} s")
        time.sleep(POLL_SECONDS)


def measure(get: Callable[[], int], upgrade: Callable[[], None], what: str) -> Figures:
    """Poll with `get` while `upgrade` runs, until the first answer after it; the client's figures."""
    poller = Poller(get)
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    begin = time.monotonic()
    try:
        time.sleep(POLL_BASELINE_SECONDS)
        started = time.monotonic()
        upgrade()
        done = time.monotonic()
        deadline = done + READY_TIMEOUT_SECONDS
        while not poller.ok_since(done):
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"{what}: no /health 200 within {READY_TIMEOUT_SECONDS} s of the upgrade")
            time.sleep(POLL_SECONDS)
        time.sleep(POLL_BASELINE_SECONDS)
    finally:
        poller.stop.set()
        thread.join(PROXY_CLIENT_TIMEOUT_SECONDS + 10)
    end = time.monotonic()
    figures = Figures(sent=len(poller.answers), up=done - started)
    successes = [begin]
    for start, ended, got in poller.answers:
        figures.longest_wait = max(figures.longest_wait, ended - start)
        if got == str(HTTP_OK):
            successes.append(ended)
        else:
            figures.failed += 1
            figures.failures[got] += 1
            figures.failed_at.append(ended - started)
    successes.append(end)
    figures.longest_gap = max(b - a for a, b in zip(successes, successes[1:], strict=False))
    return figures


def _check_upgrade_plan(state: planning.State, upgraded: Deployment) -> list[str]:
    """The upgrade's plan: the backend replaced delete-before-create, after the gate's steps; its summary."""
    steps = planning.plan(state, upgraded)
    backend = upgraded.container("backend")
    replaced = {step.urn for step in steps.ops("replace")}
    if backend.urn not in replaced or not backend.delete_before_replace:
        raise RuntimeError(f"the upgrade does not replace the backend delete-before-create: {steps.summary()}")
    if not {upgraded.container(role).urn for role in ("schema-backup", "release-steps")} <= replaced:
        raise RuntimeError(f"the upgrade runs no schema gate: {steps.summary()}")
    return steps.summary()


def _proxy_errors(client: docker.DockerClient, stack: str) -> list[str]:
    """The proxy's last error lines (Caddy logs JSON, one object a line)."""
    logs = client.containers.get(f"argusai-{stack}-proxy").logs().decode(errors="replace")
    errors = [line for line in logs.splitlines() if '"level":"error"' in line or '"level":"warn"' in line]
    return errors[-PROXY_LOG_LINES:]


def program_run(client: docker.DockerClient, variant: str, new_image: str) -> tuple[Figures, list[str]]:
    """One upgrade of a stack of this program (`proxy` or `direct`); (figures, the upgrade's plan)."""
    stack = f"benchup{secrets.token_hex(3)}"
    port = free_port()
    base = program_overrides(variant, port, free_port())
    applier = Applier(client)

    def image_ids(ref: str) -> str:
        return str(client.images.get(ref).id)

    try:
        state = applier.up(run_program(stack, base, image_ids=image_ids), planning.State())
        # The program again over that state: what `pulumi stack output` reads (the CA printer's output).
        settled = run_program(stack, base, image_ids=image_ids, prior=state)
        if variant == PROXY:
            context = https.trusting(settled.outputs["tlsCaCertificate"].value)

            def get() -> int:
                return https.request(HOSTNAME, port, "/health", context, timeout=PROXY_CLIENT_TIMEOUT_SECONDS).status
        else:

            def get() -> int:
                return https.plain_request(LOOPBACK, port, "/health", timeout=DIRECT_CLIENT_TIMEOUT_SECONDS).status

        wait_answer(get, variant)
        summary: list[str] = []

        def upgrade() -> None:
            nonlocal state
            upgraded = run_program(stack, {**base, "backendImage": new_image}, image_ids=image_ids, prior=state)
            summary.extend(_check_upgrade_plan(state, upgraded))
            state = applier.up(upgraded, state)

        figures = measure(get, upgrade, variant)
        if variant == PROXY and figures.failed:
            for line in _proxy_errors(client, stack):
                print(f"proxy log: {line}", flush=True)
        return figures, summary
    finally:
        remove_stack(client, stack)


def _compose(base: list[str], env: dict[str, str], *args: str) -> str:
    """One docker-compose command; its output (raises with it on failure)."""
    done = subprocess.run(  # noqa: S603 - the compose binary found on PATH, fixed arguments
        [*base, *args], env=env, check=False, capture_output=True, text=True, timeout=COMPOSE_TIMEOUT_SECONDS
    )
    if done.returncode:
        raise RuntimeError(f"docker-compose {' '.join(args)} failed: {(done.stdout + done.stderr)[-2000:]}")
    return done.stdout + done.stderr


def compose_run(compose_bin: str, source: Path, new_image: str) -> tuple[Figures, list[str], list[str]]:
    """One upgrade with the release's compose file; (figures, the file's changes, the upgrade's output)."""
    project = f"benchupcompose{secrets.token_hex(3)}"
    port = free_port()
    compose, changes = argusai.compose_file(source, port, free_port())
    changes = [change for change in changes if not change.startswith("postgres:")]
    changes.append("postgres: not started (no postgres profile: SQLite, the file's default)")
    env = {
        **{key: value for key, value in os.environ.items() if key != "DATABASE_URL"},  # the file's SQLite default
        "ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "JWT_SECRET_KEY": secrets.token_hex(32),
    }

    def get() -> int:
        return https.plain_request(LOOPBACK, port, "/health", timeout=DIRECT_CLIENT_TIMEOUT_SECONDS).status

    with tempfile.TemporaryDirectory() as workdir:
        path = Path(workdir) / "docker-compose.yml"
        path.write_text(yaml.safe_dump(compose))
        base = [compose_bin, "-p", project, "-f", str(path)]
        output: list[str] = []
        try:
            _compose(base, env, "up", "-d")
            wait_answer(get, COMPOSE)
            compose["services"]["backend"]["image"] = new_image

            def upgrade() -> None:
                path.write_text(yaml.safe_dump(compose))
                output.extend(_compose(base, env, "up", "-d").strip().splitlines())

            figures = measure(get, upgrade, COMPOSE)
        finally:
            subprocess.run(  # noqa: S603 - the compose binary found on PATH, fixed arguments
                [*base, "down", "-v", "--remove-orphans"], env=env, check=False, capture_output=True,
                timeout=COMPOSE_TIMEOUT_SECONDS,
            )  # fmt: skip
    changes.append(
        "backend upgrade: the file's backend image changed to the new release's tag and `up -d` run again "
        "(the file names the image literally, no variable)"
    )
    return figures, changes, output


def ssl_profile_note(client: docker.DockerClient, source: Path) -> str:
    """Whether the compose file's ssl profile (nginx) can run here; said, never faked."""
    image = yaml.safe_load((source / "docker-compose.yml").read_text())["services"]["nginx"]["image"]
    try:
        client.images.get(image)
    except NotFound:
        return (
            f"compose ssl profile: not run: its image {image} is not on this engine (no registry here), so the "
            "compose figures are plain HTTP to the backend's published port, with no proxy in front"
        )
    return f"compose ssl profile: not run by this benchmark ({image} is on the engine; the figures are without it)"


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def main() -> None:
    """BENCH_RUNS runs (default 1) of each variant; print every run and the medians."""
    compose_bin, source, runs = argusai.compose_prerequisites()
    client = docker.from_env(timeout=ENGINE_TIMEOUT_SECONDS)
    ensure_images(recipes=(FRONTEND, ARGUSAI_BACKEND, CADDY))
    started = time.monotonic()
    # The new release: the same content under a new image id and tag (only a label differs).
    new_image = derive_image(client, ARGUSAI_BACKEND.tag, "upgrade", repository=DERIVED_REPOSITORY)
    results: dict[str, list[Figures]] = {variant: [] for variant in VARIANTS}
    changes: list[str] = []
    plans: dict[str, list[str]] = {}
    compose_output: list[str] = []
    try:
        for run in range(1, runs + 1):
            for variant in (PROXY, DIRECT):
                figures, plans[variant] = program_run(client, variant, new_image)
                results[variant].append(figures)
                print(f"run {run}/{runs} {variant}: {figures.line()}{figures.detail()}", flush=True)
            figures, changes, compose_output = compose_run(compose_bin, source, new_image)
            results[COMPOSE].append(figures)
            print(f"run {run}/{runs} {COMPOSE}: {figures.line()}{figures.detail()}", flush=True)
    finally:
        remove_derived(client, [new_image])
    for variant, summary in plans.items():
        print(f"upgrade plan ({variant}): {'; '.join(summary)}")
    for line in compose_output:
        print(f"compose upgrade output: {line}")
    for change in changes:
        print(f"compose change: {change}")
    print(ssl_profile_note(client, source))
    print(
        "frontend: none in this program's stacks (frontendImage empty); the compose file's frontend service runs "
        "the stand-in (cheap, not polled), as in benchmarks/argusai.py"
    )
    print(
        f"client: GET /health every {POLL_SECONDS} s, one at a time; through the proxy it waits up to "
        f"{PROXY_CLIENT_TIMEOUT_SECONDS} s (the proxy holds {HOLD_SECONDS} s), "
        f"otherwise {DIRECT_CLIENT_TIMEOUT_SECONDS} s"
    )
    for variant in VARIANTS:
        figures = results[variant]
        median = Figures(
            sent=_median([f.sent for f in figures]),
            failed=_median([f.failed for f in figures]),
            longest_wait=_median([f.longest_wait for f in figures]),
            longest_gap=_median([f.longest_gap for f in figures]),
            up=_median([f.up for f in figures]),
        )
        print(f"upgrade {variant}: {median.line()}")
    failed = sum(f.failed for f in results[PROXY])
    verdict = "met" if not failed else f"NOT met ({failed} failed over {runs} run(s))"
    print(f"goal: no failed request through the proxy: {verdict}")
    print(f"benchmark time: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()

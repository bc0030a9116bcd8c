"""Fixtures for the tests that deploy the real program on a real Docker engine.

Every test gets its own stack (`it<6 hex>`), so every Docker object it creates carries the label
`argusai.stack=<that stack>`; a finalizer removes all of them even when the test fails, and a session
finalizer checks that no test container is left behind. Without an engine the whole directory is
skipped with one line, unless REQUIRE_DOCKER=1 makes that a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import DockerException, NotFound

from components.naming import LABEL_MANAGED_BY, LABEL_ROLE, LABEL_STACK, MANAGED_BY
from testkit import plan as planning
from testkit.applier import Applier, ApplyError
from testkit.cleanup import remove_stack
from testkit.export import clear_secrets, deployed_secrets, stack_export
from testkit.harness import PROJECT, Deployment, run_program
from testkit.images.derive import remove_derived
from testkit.images.ensure import ensure_images
from testkit.images.recipes import ARGUSAI_BACKEND, BACKEND, CADDY, FRONTEND, POSTGRES
from testkit.net import free_port
from testkit.oneoff import run_once
from testkit.registry import LoopbackRegistry, registry_binary
from tests.conftest import record_result

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

BACKEND_IMAGE = BACKEND.tag
POSTGRES_IMAGE = POSTGRES.tag
FRONTEND_IMAGE = FRONTEND.tag
PROXY_IMAGE = CADDY.tag
NAME_PREFIX = "argusai-it"
#: The stacks this session made: its end checks and removes only their objects (another test run may
#: share the engine).
SESSION_STACKS: set[str] = set()
#: Every engine call: on a cold machine a container create can take many seconds (vfs copies the image),
#: and a create the client gave up on still makes its container.
ENGINE_TIMEOUT_SECONDS = 300
HTTP_TIMEOUT_SECONDS = 5
POLL_SECONDS = 0.5
#: The stack's DATABASE_URL (`postgresql+<driver>://...`) as libpq takes it, in the shell of a throwaway
#: container: the README's restore strips the driver the same way.
LIBPQ_URL = '"${DATABASE_URL%%+*}://${DATABASE_URL#*://}"'
SKIP_MESSAGE = "no Docker engine answers; integration tests skipped (set REQUIRE_DOCKER=1 to fail instead)"


def pytest_configure(config: pytest.Config) -> None:
    """Register the `integration` marker (also declared in pyproject.toml)."""
    config.addinivalue_line("markers", "integration: deploys on a real Docker engine (tests/integration)")
    config.addinivalue_line("markers", "argusai: deploys the real ArgusAI release built from its source")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything in this directory `integration`, so `-m "not integration"` leaves it out."""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[pytest.TestReport]:
    """Point every "no engine" skip at this file, so the summary folds them into one line."""
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple) and report.longrepr[2].endswith(SKIP_MESSAGE):
        report.longrepr = (str(Path(__file__).relative_to(ROOT)), None, report.longrepr[2])
    return report


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = POLL_SECONDS) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Stack:
    """One test deployment: its own stack name, ports and helpers to reach what it runs."""

    def __init__(self, client: docker.DockerClient, applier: Applier, name: str) -> None:
        """Pick the stack's ports; nothing is deployed yet."""
        self.client = client
        self.applier = applier
        self.name = name
        self.backend_port = free_port()
        self.frontend_port = free_port()
        self.http_port = free_port()
        self.deployment: Deployment | None = None
        self.state = planning.State()
        """The engine's state of this stack between runs."""
        self.registry_digests: Callable[[str], str] | None = None
        """Answers `getRegistryImage` (a test's loopback registry); unset, no registry is asked."""
        self.base: dict[str, Any] = {
            "namePrefix": NAME_PREFIX,
            "backendImage": BACKEND_IMAGE,
            "postgresImage": POSTGRES_IMAGE,
            "frontendImage": "",
            "backendPort": self.backend_port,
            "frontendPort": self.frontend_port,
            # The proxy in front (every stack has it): the test Caddy image, the app on a port of its own.
            "httpPort": self.http_port,
            "proxyImage": PROXY_IMAGE,
            "bindAddress": "127.0.0.1",
            "protectData": False,
            # The test images exist only on this engine; tests/integration/test_engine_registry.py pushes
            # them to a registry on loopback to prove the default (true).
            "registryDigests": False,
            # The stand-in backend has no Alembic; the real release's tests turn the gate on.
            "schemaGate": False,
        }

    def image_id(self, reference: str) -> str:
        """The engine's id of an image, pulled first when missing (the provider's create does the same)."""
        try:
            return self.client.images.get(reference).id
        except NotFound:
            return self.client.images.pull(reference).id

    def program(self, overrides: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None) -> Deployment:
        """Run the real program for this stack over its state; test overrides win over the base ones."""
        self.deployment = run_program(
            self.name,
            {**self.base, **(overrides or {})},
            secrets,
            image_ids=self.image_id,
            prior=self.state,
            registry_digests=self.registry_digests,
        )
        return self.deployment

    def plan(self, overrides: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None) -> planning.Plan:
        """What `pulumi preview` would report now."""
        return planning.plan(self.state, self.program(overrides, secrets))

    def up(
        self,
        overrides: dict[str, Any] | None = None,
        secrets: dict[str, Any] | None = None,
        *,
        refresh: bool = False,
    ) -> Deployment:
        """Run the program and apply what it declared (`pulumi up`), keeping the state even on failure."""
        deployment = self.program(overrides, secrets)
        self.apply(deployment, refresh=refresh)
        # The engine's invariant, checked after every deploy: the same config again plans nothing, in the
        # form the provider read back from dockerd (a diff here means every `pulumi up` would change it).
        again = self.plan(overrides, secrets)
        assert again.summary() == [], f"a second `pulumi up` would change: {again.summary()}"
        # And no secret it deployed shows in clear anywhere `pulumi stack export` would print it.
        exported = stack_export(self.state, self.name, PROJECT)
        assert clear_secrets(exported, deployed_secrets(self.state)) == []
        self.deployment = deployment
        return deployment

    def apply(self, deployment: Deployment, *, refresh: bool = False) -> None:
        """`pulumi up` of a given (possibly hand-edited) deployment, keeping the state a failure leaves."""
        try:
            self.state = self.applier.up(deployment, self.state, refresh=refresh)
        except ApplyError as exc:
            if exc.state is not None:
                self.state = exc.state
            raise

    def down(self) -> None:
        """`pulumi destroy`: refused when anything is protected; retained volumes stay."""
        self.state = self.applier.destroy(self.state)

    def physical(self, role: str) -> str:
        """The Docker name of a role, e.g. `argusai-it-it1a2b3c-postgres`."""
        return f"{NAME_PREFIX}-{self.name}-{role}"

    def container(self, role: str) -> Any:
        """The container of a role (reloaded)."""
        return self.client.containers.get(self.physical(role))

    def health(self, role: str) -> str:
        """The container's health status (`starting`, `healthy`, `unhealthy`; `none` without a healthcheck)."""
        return str(self.container(role).attrs["State"].get("Health", {}).get("Status", "none"))

    def output(self, key: str) -> Any:
        """A resolved stack output."""
        assert self.deployment is not None
        return self.deployment.outputs[key].value

    def http(self, method: str, path: str, body: Any = None, port: int | None = None) -> tuple[int, Any]:
        """Call the published backend on 127.0.0.1; return (status, JSON body or None)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - fixed http scheme on loopback
            f"http://127.0.0.1:{port or self.backend_port}{path}", data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
                raw = response.read()
                status = response.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        except OSError:
            return 0, None  # not listening (yet)
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def healthy(self) -> bool:
        """Whether the backend answers GET /health with 200."""
        return self.http("GET", "/health")[0] == 200

    def post_notes(self, notes: list[str]) -> None:
        """Write one event per note through the backend's API."""
        for note in notes:
            status, _ = self.http("POST", "/events", {"note": note})
            assert status == 201, f"POST /events answered {status}"

    def notes(self) -> list[str]:
        """Every event note the backend returns."""
        status, body = self.http("GET", "/events")
        assert status == 200, f"GET /events answered {status}: {body}"
        return list(body["notes"])

    def oneoff(
        self,
        image: str,
        command: list[str],
        *,
        network: str | None = None,
        volumes: dict[str, dict[str, str]] | None = None,
        environment: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """Run a throwaway container (labelled with this stack) to completion; return (exit code, output).

        It joins only `network` (or none at all), so it can reach nothing else.
        """
        finished = run_once(
            self.client,
            image,
            command=command,
            network=network,
            volumes=volumes,
            environment=environment,
            labels={LABEL_STACK: self.name, LABEL_ROLE: "oneoff"},
        )
        return finished.code, finished.output

    def exec(self, role: str, command: list[str]) -> tuple[int, str]:
        """Run a command in a running container of this stack; return (exit code, output)."""
        result = self.container(role).exec_run(command)
        return int(result.exit_code), result.output.decode(errors="replace")

    def cleanup(self) -> None:
        """Remove every container, network and volume labelled with this stack."""
        remove_stack(self.client, self.name)


def _engine() -> docker.DockerClient | None:
    try:
        client = docker.from_env(timeout=ENGINE_TIMEOUT_SECONDS)
        client.ping()
    except (DockerException, OSError):
        return None
    return client


@pytest.fixture(scope="session", autouse=True)
def engine() -> Iterator[docker.DockerClient]:
    """The Docker engine; skips (or with REQUIRE_DOCKER=1 fails) every test here when none answers.

    After the session, no container of a test stack may be left behind.
    """
    client = _engine()
    if client is None:
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail("REQUIRE_DOCKER=1 but no Docker engine answers (is dockerd running? DOCKER_HOST?)")
        pytest.skip(SKIP_MESSAGE)
    info = client.info()
    record_result(f"engine: dockerd {info.get('ServerVersion')}, storage driver {info.get('Driver')}")
    yield client
    left = [
        c.name
        for c in client.containers.list(all=True, filters={"label": f"{LABEL_MANAGED_BY}={MANAGED_BY}"})
        if c.labels.get(LABEL_STACK, "") in SESSION_STACKS
    ]
    for name in left:
        client.containers.get(name).remove(force=True)
    assert not left, f"test containers left behind: {left}"


@pytest.fixture(scope="session")
def images(engine: docker.DockerClient) -> dict[str, str]:
    """Build (or find) the registry-free stand-in images; tag -> image id."""
    return ensure_images()


@pytest.fixture
def make_stack(engine: docker.DockerClient, images: dict[str, str]) -> Iterator[Callable[[], Stack]]:
    """Factory of fresh stacks; each one's Docker objects are removed afterwards, pass or fail."""
    created: list[Stack] = []
    applier = Applier(engine)

    def make() -> Stack:
        stack = Stack(engine, applier, f"it{secrets.token_hex(3)}")
        created.append(stack)
        SESSION_STACKS.add(stack.name)
        return stack

    yield make
    for stack in created:
        stack.cleanup()


@pytest.fixture
def derived(engine: docker.DockerClient) -> Iterator[list[str]]:
    """References of images a test derives (testkit.images.derive); removed afterwards with their containers."""
    made: list[str] = []
    yield made
    remove_derived(engine, reversed(made))


@pytest.fixture
def stack(make_stack: Callable[[], Stack]) -> Stack:
    """One fresh stack for this test."""
    return make_stack()


def require_release_image(client: docker.DockerClient) -> None:
    """Skip (fail with REQUIRE_DOCKER=1) when the real release's image has not been built."""
    try:
        client.images.get(ARGUSAI_BACKEND.tag)
    except NotFound:
        message = (
            f"{ARGUSAI_BACKEND.tag} is missing (`python -m testkit.images.build --only argusai-backend` builds it)"
        )
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def volume_exists(client: docker.DockerClient, name: str) -> bool:
    """Whether the engine holds a volume of this name."""
    try:
        client.volumes.get(name)
    except NotFound:
        return False
    return True


@pytest.fixture
def registry(engine: docker.DockerClient) -> Iterator[LoopbackRegistry]:
    """A fresh registry on loopback; skipped (failed with REQUIRE_DOCKER=1) without docker-registry.

    Afterwards the engine must hold no reference to it (the tests untag what they push).
    """
    if registry_binary() is None:
        message = "docker-registry is not installed (scripts/docker-engine.sh installs it)"
        if os.environ.get("REQUIRE_DOCKER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    with LoopbackRegistry() as running:
        yield running
        left = running.remove_local_references(engine)
    assert not left, f"image references to the test registry left behind: {left}"

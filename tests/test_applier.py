"""The test kit's applier makes the calls pulumi-docker makes, in its order, and waits where it waits.

terraform-provider-docker's `resourceDockerContainerCreate`: create, connect `networks_advanced`, then one
`CopyToContainer` per `upload` (a tar of that one file), then start. Each copy costs the engine a mount
of the container's file system, so a step with many uploads starts later on the real provider: the
applier pays the same, or the benchmarks would hide it. Its network create waits a fixed delay before
the first read-back (`networkReadRefreshDelay`): a container on a new network is created no earlier.
"""

from __future__ import annotations

import io
import tarfile
import time
from typing import Any

import pytest

import testkit.applier as applier_module
from components.naming import Naming
from components.network import Networks, NetworksArgs
from components.scripts import PG_BACKUP, PG_VERSION, SQLITE_BACKUP
from components.step import Step
from testkit import plan as planning
from testkit.applier import Applier
from testkit.harness import CONTAINER, NETWORK, run_components

from .test_step import step_args

NETWORKS = ("argusai-unit-app", "argusai-unit-db")


class RecordingApi:
    """The low-level Docker API calls the create makes, recorded; just enough answers to go on."""

    def __init__(self) -> None:
        """Nothing called yet."""
        self.calls: list[tuple[str, Any]] = []
        self.created_at: dict[str, float] = {}
        """When each container or network was created (monotonic), by name."""

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        """Host config as given."""
        return kwargs

    def create_container(self, **kwargs: Any) -> dict[str, str]:
        """Record the create."""
        self.calls.append(("create", kwargs["name"]))
        self.created_at[kwargs["name"]] = time.monotonic()
        return {"Id": "c0ffee"}

    def networks(self, names: list[str]) -> list[dict[str, str]]:
        """No network of that name yet."""
        return []

    def create_network(self, name: str, **kwargs: Any) -> dict[str, str]:
        """Record the network's create."""
        self.calls.append(("network", name))
        self.created_at[name] = time.monotonic()
        return {"Id": "0" * 64}

    def disconnect_container_from_network(self, cid: str, network: str) -> None:
        """Record leaving the default network."""
        self.calls.append(("disconnect", network))

    def connect_container_to_network(self, cid: str, network: str, aliases: Any = None) -> None:
        """Record joining a network."""
        self.calls.append(("connect", network))

    def put_archive(self, cid: str, path: str, data: bytes) -> None:
        """Record a copy: the names in its tar."""
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            self.calls.append(("copy", tuple(archive.getnames())))

    def start(self, cid: str) -> None:
        """Record the start."""
        self.calls.append(("start", cid))

    def inspect_container(self, cid: str) -> dict[str, Any]:
        """A healthy, running container."""
        return {"State": {"Health": {"Status": "healthy"}}}


class Client:
    """A docker client whose `api` records."""

    def __init__(self) -> None:
        """One recording API."""
        self.api = RecordingApi()


def test_each_upload_is_its_own_copy_after_the_networks_and_before_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """A step on two networks with three files: create, leave bridge, two connects, three copies, start."""
    files = [*PG_BACKUP.uploads(), *PG_VERSION.uploads(), *SQLITE_BACKUP.uploads()]
    _, deployment = run_components(
        lambda: Step("three-files", step_args("three-files", "true", networks=NETWORKS, files=files))
    )
    (registration,) = deployment.of_type(CONTAINER)
    uploads = [upload["file"] for upload in registration.plain("uploads")]
    monkeypatch.setattr(applier_module, "container_state_from_engine", lambda inputs, attrs: dict(inputs))
    client = Client()
    Applier(client)._create_container(registration)  # noqa: SLF001 - the create alone, no plan around it

    assert client.api.calls[:4] == [
        ("create", "argusai-unit-three-files"),
        ("disconnect", "bridge"),
        ("connect", NETWORKS[0]),
        ("connect", NETWORKS[1]),
    ]
    assert [kind for kind, _ in client.api.calls[4:]] == ["copy"] * len(uploads) + ["start"]
    copies = [names for kind, names in client.api.calls if kind == "copy"]
    assert sorted(copies) == sorted((name,) for name in uploads)
    assert len(uploads) == len(("pg_backup.sh", "pg_version.sh", "sqlite_backup.py"))


#: Shorter than the provider's 2 s, for a unit test; still far above the calls' own time.
TEST_NETWORK_DELAY = 0.5


def test_a_container_on_a_new_network_is_created_after_the_providers_read_back_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A step on the database network waits for the network's read-back delay; a step on none does not."""

    def build() -> None:
        networks = Networks("network", NetworksArgs(naming=Naming("argusai", "unit"), database_network=True))
        for role, on in (("on-db", [networks.db.name]), ("on-none", [])):
            Step(role, step_args(role, "true", networks=on))

    _, deployment = run_components(build)
    monkeypatch.setattr(applier_module, "NETWORK_READ_DELAY_SECONDS", TEST_NETWORK_DELAY)
    monkeypatch.setattr(applier_module, "container_state_from_engine", lambda inputs, attrs: dict(inputs))
    client = Client()
    applier = Applier(client)
    # The leftover checks before each create ask the engine about names: not what this test is about.
    monkeypatch.setattr(applier, "_before_create", lambda reg: None)
    state = planning.State()
    for reg in [*deployment.of_type(NETWORK), *deployment.of_type(CONTAINER)]:
        applier._step(planning.Step("create", reg.urn, reg.type, reg.name), reg, state)  # noqa: SLF001

    created = client.api.created_at
    assert created["argusai-unit-on-db"] - created["argusai-unit-db"] >= TEST_NETWORK_DELAY
    assert created["argusai-unit-on-none"] - created["argusai-unit-on-db"] < TEST_NETWORK_DELAY / 2

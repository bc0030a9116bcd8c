"""The test kit's applier creates a container with the calls pulumi-docker makes, in its order.

terraform-provider-docker's `resourceDockerContainerCreate`: create, connect `networks_advanced`, then one
`CopyToContainer` per `upload` (a tar of that one file), then start. Each copy costs the engine a mount
of the container's file system, so a step with many uploads starts later on the real provider: the
applier pays the same, or the benchmarks would hide it.
"""

from __future__ import annotations

import io
import tarfile
from typing import Any

import pulumi_docker as docker
import pytest

import testkit.applier as applier_module
from components.naming import Naming
from components.scripts import PG_BACKUP, PG_VERSION, SQLITE_BACKUP
from components.step import Step, StepArgs
from testkit.applier import Applier
from testkit.harness import CONTAINER, run_components

NETWORKS = ("argusai-unit-app", "argusai-unit-db")


class RecordingApi:
    """The low-level Docker API calls the create makes, recorded; just enough answers to go on."""

    def __init__(self) -> None:
        """Nothing called yet."""
        self.calls: list[tuple[str, Any]] = []

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        """Host config as given."""
        return kwargs

    def create_container(self, **kwargs: Any) -> dict[str, str]:
        """Record the create."""
        self.calls.append(("create", kwargs["name"]))
        return {"Id": "c0ffee"}

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
    _, deployment = run_components(
        lambda: Step(
            "three-files",
            StepArgs(
                naming=Naming("argusai", "unit"),
                role="three-files",
                image="sha256:" + "0" * 64,
                script="true",
                volumes=[docker.ContainerVolumeArgs(volume_name="argusai-unit-backups", container_path="/steps")],
                log_dir="/steps",
                networks=NETWORKS,
                files=[*PG_BACKUP.uploads(), *PG_VERSION.uploads(), *SQLITE_BACKUP.uploads()],
            ),
        )
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

"""The removal of a container an interrupted `up` left (components/leftovers.py), as the program declares it.

What the hook does on an engine is proven in tests/integration/test_engine_interrupted.py.
"""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import ClassVar

import docker
import pulumi
import pytest

from components.leftovers import client_args
from components.naming import Engine
from testkit.harness import run_program
from testkit.net import LOOPBACK, free_port
from testkit.provider import CONTAINER

API_VERSION = "1.41"
MODES = [{}, {"database": "postgres"}, {"tlsHostnames": ["argus.lan"], "tlsSource": "stack-ca"}]


@pytest.mark.parametrize("overrides", MODES)
def test_every_container_removes_its_own_leftover_before_its_create(overrides: dict[str, object]) -> None:
    """One `before_create` hook per container, for its own name: none is created without it."""
    deployment = run_program("dev", overrides)
    containers = deployment.of_type(CONTAINER)
    assert containers
    for reg in containers:
        assert reg.before_create == [f"remove-leftover-{reg.plain('name')}"], reg.name
        assert reg.before_create[0] in deployment.hooks
    assert len(deployment.hooks) == len(containers)


class _Engine(http.server.BaseHTTPRequestHandler):
    """An engine with no container: answers the version, and 404 for any container."""

    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:  # noqa: N802 - the handler's API
        self.seen.append(self.path)
        found = self.path.endswith("/version")
        body = json.dumps({"ApiVersion": API_VERSION} if found else {"message": "No such container"}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def test_the_hook_asks_the_engine_the_provider_names() -> None:
    """`docker:host` (as the provider reads it) is where the hook looks for the container's name."""
    port = free_port()
    server = http.server.HTTPServer((LOOPBACK, port), _Engine)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        deployment = run_program("dev", {"docker:host": f"tcp://{LOOPBACK}:{port}"})
        backend = deployment.container("backend")
        hook = deployment.hooks[backend.before_create[0]]
        hook(pulumi.ResourceHookArgs(urn=backend.urn, id="", name=backend.name, type=backend.type))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert any(path.endswith("/containers/argusai-dev-backend/json") for path in _Engine.seen), _Engine.seen


def test_an_ssh_host_goes_through_the_systems_ssh() -> None:
    """As the provider (and the docker CLI): `ssh://` runs the ssh client, with its keys and config."""
    args = client_args(Engine(host="ssh://deploy@127.0.0.1:1"))
    # An API version given: no connection is tried here.
    client = docker.DockerClient(**args, version=API_VERSION)
    adapter = client.api.get_adapter("http+docker://ssh")
    assert type(adapter).__name__ == "SSHHTTPAdapter"
    assert adapter.ssh_client is None, "the system's ssh, not paramiko's own client"


def test_a_tls_host_uses_the_providers_certificates(tmp_path: Path) -> None:
    """`docker:certPath` holds ca.pem, cert.pem and key.pem, as for the provider."""
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("PEM")
    args = client_args(Engine(host="tcp://nvr.lan:2376", cert_path=str(tmp_path)))
    assert args["tls"].cert == (str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    assert args["tls"].ca_cert == str(tmp_path / "ca.pem")
    assert args["tls"].verify is True
    assert client_args(Engine()) == {}, "no host: DOCKER_HOST, else the local socket (docker.from_env)"

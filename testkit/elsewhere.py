"""A PostgreSQL server "kept elsewhere", for `database: external`: outside every stack, reached by address.

The server runs in the test PostgreSQL image on the host's network namespace, listening only on the
address of the engine's default bridge (`docker0`): a stack's containers reach it the way they would reach
a server on another host, through their gateway by address and port, over no network the stack declares,
and nothing else can (that address is local to this machine). TLS is on with a certificate made here whose
subject alternative name is that address, signed by a CA made here (`Certificates`).

The container carries the test stack's label, so `testkit.cleanup.remove_stack` removes it.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Any

import docker

from components.naming import LABEL_ROLE, LABEL_STACK
from testkit.archive import tar_of
from testkit.net import free_port
from testkit.pki import Certificates

CERT_DIR = "/etc/postgresql-tls"
READY_TIMEOUT_SECONDS = 120
POLL_SECONDS = 0.5
# The test image's postgres user (`id postgres`): the key must be its own and private.
POSTGRES_UID, POSTGRES_GID = 100, 102
PRIVATE_MODE, PUBLIC_MODE = 0o600, 0o644


def bridge_address(client: docker.DockerClient) -> str:
    """The host's address on the engine's default bridge (dockerd gives it the subnet's first address)."""
    config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    return str(config.get("Gateway") or next(ipaddress.ip_network(config["Subnet"]).hosts()))


@dataclass
class ElsewhereServer:
    """A running server kept elsewhere; `url(...)` is what an operator puts in `databaseUrl`."""

    client: docker.DockerClient
    container: Any
    address: str
    port: int
    user: str
    password: str
    db: str
    certificates: Certificates

    def url(self, sslmode: str = "verify-full") -> str:
        """`postgresql://user:password@address:port/db?sslmode=...`."""
        return f"postgresql://{self.user}:{self.password}@{self.address}:{self.port}/{self.db}?sslmode={sslmode}"

    def psql(self, sql: str) -> str:
        """Run SQL on the server as its owner (inside its container, over its socket); return the output."""
        result = self.container.exec_run(
            [
                "psql",
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                self.db,
                "-c",
                sql,
            ],
            user="postgres",
        )
        output = result.output.decode(errors="replace")
        if result.exit_code != 0:
            raise RuntimeError(f"psql failed: {output}")
        return output.strip()


def start_elsewhere(client: docker.DockerClient, image: str, stack: str, password: str) -> ElsewhereServer:
    """Start the server (TLS on, certificates for the bridge address) and wait until it accepts connections."""
    address = bridge_address(client)
    port = free_port()
    certificates = Certificates.for_address(address)
    user = db = "elsewhere"
    container = client.containers.create(
        image,
        [
            "postgres",
            "-c", "ssl=on",
            "-c", f"ssl_cert_file={CERT_DIR}/server.crt",
            "-c", f"ssl_key_file={CERT_DIR}/server.key",
            "-c", f"listen_addresses={address}",
            "-c", f"port={port}",
        ],
        environment={"POSTGRES_USER": user, "POSTGRES_PASSWORD": password, "POSTGRES_DB": db},
        network_mode="host",
        labels={LABEL_STACK: stack, LABEL_ROLE: "elsewhere-postgres"},
    )  # fmt: skip
    container.put_archive(
        "/",
        tar_of(
            {
                f"{CERT_DIR}/server.crt": (certificates.server_cert, PUBLIC_MODE),
                f"{CERT_DIR}/server.key": (certificates.server_key, PRIVATE_MODE),
            },
            uid=POSTGRES_UID,
            gid=POSTGRES_GID,
        ),
    )
    container.start()
    server = ElsewhereServer(client, container, address, port, user, password, db, certificates)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        ready = container.exec_run(["pg_isready", "-h", address, "-p", str(port), "-U", user, "-d", db])
        if ready.exit_code == 0:
            return server
        container.reload()
        if container.status != "running" or time.monotonic() > deadline:
            raise RuntimeError(
                f"the server elsewhere did not start: {container.logs()[-2000:].decode(errors='replace')}"
            )
        time.sleep(POLL_SECONDS)

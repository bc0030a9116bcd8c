"""Pebble, Let's Encrypt's ACME test server, on a stack's own network: a real ACME CA for the proxy to use.

Pebble validates HTTP-01 challenges by connecting to the name being issued on `httpPort`; on the stack's
app network that name is the proxy's alias, so issuance works end to end with no DNS and no traffic
leaving the machine. Its directory is served over HTTPS with a certificate for the name `pebble`, made by a
test CA (the proxy's `acmeCaCert`). Each start makes a new issuing root, read from its management API.

The container carries the test stack's label, so `testkit.cleanup.remove_stack` removes it.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from dataclasses import dataclass

import docker

from components.naming import LABEL_ROLE, LABEL_STACK
from testkit.archive import PUBLIC_MODE, tar_of
from testkit.images.recipes import PEBBLE
from testkit.net import LOOPBACK
from testkit.pki import Certificates

ALIAS = "pebble"
DIRECTORY_PORT = 14000
MANAGEMENT_PORT = 15000
CONFIG_DIR = "/etc/pebble"
READY_TIMEOUT_SECONDS = 60
POLL_SECONDS = 0.5
HTTP_TIMEOUT_SECONDS = 5
#: Pebble's default: five years, as a public CA's certificates are long enough never to renew in a test.
DEFAULT_VALIDITY = 157766400


@dataclass(frozen=True)
class Pebble:
    """A running Pebble."""

    container: str
    """Its container's name."""
    certificates: Certificates
    """The test CA that signed Pebble's own HTTPS certificate (`ca`: what acmeCaCert holds)."""
    management_port: int
    """Host port (127.0.0.1) of its management API."""

    @property
    def directory(self) -> str:
        """The ACME directory URL, as the proxy reaches it on the network."""
        return f"https://{ALIAS}:{DIRECTORY_PORT}/dir"

    def issuing_root(self) -> str:
        """The root (PEM) every certificate this Pebble issues chains to."""
        context = ssl.create_default_context(cadata=self.certificates.ca)
        context.check_hostname = False  # reached on loopback, not by its name
        url = f"https://{LOOPBACK}:{self.management_port}/roots/0"
        with urllib.request.urlopen(url, context=context, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
            return response.read().decode()


def start_pebble(
    client: docker.DockerClient, network: str, stack: str, http_port: int, validity_seconds: int = DEFAULT_VALIDITY
) -> Pebble:
    """Start Pebble on `network` (alias `pebble`), validating HTTP-01 on `http_port`; wait until it answers.

    Its certificates are valid `validity_seconds` (Pebble 2.4's `certificateValidityPeriod`).
    """
    certificates = Certificates.for_names(ALIAS, ca_name="argusai test ACME server CA")
    config = {
        "pebble": {
            "listenAddress": f"0.0.0.0:{DIRECTORY_PORT}",
            "managementListenAddress": f"0.0.0.0:{MANAGEMENT_PORT}",
            "certificate": f"{CONFIG_DIR}/cert.pem",
            "privateKey": f"{CONFIG_DIR}/key.pem",
            "httpPort": http_port,
            "tlsPort": http_port,  # TLS-ALPN-01 unused: Caddy is told nothing of it and tries HTTP-01 first
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
            "certificateValidityPeriod": validity_seconds,
        }
    }
    name = f"{stack}-pebble"
    container = client.containers.create(
        PEBBLE.tag,
        name=name,
        labels={LABEL_STACK: stack, LABEL_ROLE: "pebble"},
        network=network,
        ports={f"{MANAGEMENT_PORT}/tcp": (LOOPBACK, None)},
        # Pebble refuses 5 % of nonces by default, to test clients' retries; a test wants one outcome.
        environment={"PEBBLE_WFE_NONCEREJECT": "0"},
    )
    container.put_archive(
        CONFIG_DIR,
        tar_of(
            {
                "pebble-config.json": (json.dumps(config).encode(), PUBLIC_MODE),
                "cert.pem": (certificates.server_cert, PUBLIC_MODE),
                "key.pem": (certificates.server_key, PUBLIC_MODE),
            }
        ),
    )
    # Reachable by name from the proxy (the create joined the network without an alias).
    client.networks.get(network).disconnect(container)
    client.networks.get(network).connect(container, aliases=[ALIAS])
    container.start()
    container.reload()
    port = int(container.ports[f"{MANAGEMENT_PORT}/tcp"][0]["HostPort"])
    pebble = Pebble(container=name, certificates=certificates, management_port=port)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        try:
            pebble.issuing_root()
            return pebble
        except OSError:
            if time.monotonic() > deadline:
                logs = container.logs(tail=40).decode(errors="replace")
                raise RuntimeError(f"pebble did not answer within {READY_TIMEOUT_SECONDS}s:\n{logs}") from None
            time.sleep(POLL_SECONDS)

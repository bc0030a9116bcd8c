"""Another host on this machine: a network namespace with its own address, linked to the Docker host by a veth pair.

`another_host()` makes the namespace and the link, and removes both afterwards, pass or fail. The two ends
get addresses from 198.18.0.0/15 (RFC 2544's range for benchmarking, never a real network's), one /30
per host; the namespace gets no default route, so the one place it can reach is the Docker host's end of
the link: what it reaches, it reaches as a device on the household's network would, through the Docker
host's published ports. `routes()` reads the namespace's routing table, the proof of that isolation.

Needs root (`ip netns`, from iproute2). Every command has a timeout.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

IP = "ip"
TIMEOUT_SECONDS = 30
#: RFC 2544: 198.18.0.0/15 is set aside for benchmarking; /30s of it at 198.18.<n>.<4k>.
BENCHMARK_NET = "198.18"
PREFIX_LENGTH = 30


def _ip(*args: str) -> str:
    done = subprocess.run(  # noqa: S603 - iproute2 with arguments made here
        [IP, *args], capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Host:
    """The other host: its namespace, its address, and the Docker host's address on the link between them."""

    namespace: str
    address: str
    """The namespace's own address."""
    docker_host: str
    """The Docker host's address on the link: what the other host opens."""

    def run(self, *command: str, timeout: float = TIMEOUT_SECONDS) -> subprocess.CompletedProcess[str]:
        """Run `command` inside the namespace."""
        return subprocess.run(  # noqa: S603 - a command of the test inside the test's own namespace
            [IP, "netns", "exec", self.namespace, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def routes(self) -> list[str]:
        """The namespace's IPv4 routing table, one route a line."""
        return [line.strip() for line in _ip("-n", self.namespace, "-4", "route", "show").splitlines() if line.strip()]


@contextmanager
def another_host() -> Iterator[Host]:
    """A namespace with its own address on a veth link to this (the Docker) host; removed afterwards."""
    tag = secrets.token_hex(3)
    namespace, outside, inside = f"argusai-{tag}", f"av{tag}h", f"av{tag}n"
    third, fourth = secrets.randbelow(256), secrets.randbelow(64) * 4
    docker_host, address = f"{BENCHMARK_NET}.{third}.{fourth + 1}", f"{BENCHMARK_NET}.{third}.{fourth + 2}"
    _ip("netns", "add", namespace)
    try:
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        try:
            _ip("link", "set", inside, "netns", namespace)
            _ip("addr", "add", f"{docker_host}/{PREFIX_LENGTH}", "dev", outside)
            _ip("link", "set", outside, "up")
            _ip("-n", namespace, "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", inside)
            _ip("-n", namespace, "link", "set", inside, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
            yield Host(namespace=namespace, address=address, docker_host=docker_host)
        finally:
            # Removing one end removes the pair.
            subprocess.run(  # noqa: S603 - iproute2, the test's own link
                [IP, "link", "del", outside], capture_output=True, timeout=TIMEOUT_SECONDS, check=False
            )
    finally:
        _ip("netns", "del", namespace)

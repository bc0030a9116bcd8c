"""Another host on this machine: a network namespace with its own address, linked to the Docker host by a veth pair.

`another_host()` makes the namespace and the link, and removes both afterwards, pass or fail. The two ends
get addresses from 198.18.0.0/15 (RFC 2544's range for benchmarking, never a real network's), one /30
per host; the namespace gets no default route, so the one place it can reach is the Docker host's end of
the link: what it reaches, it reaches as a device on the household's network would, through the Docker
host's published ports. `routes()` reads the namespace's routing table, the proof of that isolation.

The namespace is settled when `another_host()` yields: IPv4 only (no IPv6 link-local address that the
kernel would add a second later, after its duplicate address detection) and its link up. A browser
started in it sees no address or link change afterwards; chromium fails every connection in flight
with `ERR_NETWORK_CHANGED` when it sees one. The namespace also keeps the browser away from the Docker
host's own changes: every network a stack creates adds an address there.

Needs root (`ip netns`, from iproute2). Every command has a timeout.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

IP = "ip"
SYSCTL = "sysctl"
TIMEOUT_SECONDS = 30
#: How long the namespace's end of the link may take to come up (carrier), checked every POLL_SECONDS.
LINK_UP_SECONDS = 10
POLL_SECONDS = 0.05
#: Off in the namespace: the other host is IPv4 only, and so gets no address after it is handed out.
NO_IPV6 = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
#: RFC 2544: 198.18.0.0/15 is set aside for benchmarking; /30s of it at 198.18.<n>.<4k>.
BENCHMARK_NET = "198.18"
PREFIX_LENGTH = 30


def ip(*args: str) -> str:
    """Run `ip <args>` (iproute2); its output, or RuntimeError with its message."""
    done = subprocess.run(  # noqa: S603 - iproute2 with arguments made here
        [IP, *args], capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _wait_for_carrier(namespace: str, link: str) -> None:
    """Return once `link` in `namespace` is up with its carrier (LOWER_UP), or raise after LINK_UP_SECONDS."""
    deadline = time.monotonic() + LINK_UP_SECONDS
    while True:
        flags = ip("-n", namespace, "-o", "link", "show", "dev", link)
        if "LOWER_UP" in flags:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{link} in {namespace} did not come up in {LINK_UP_SECONDS} s: {flags.strip()}")
        time.sleep(POLL_SECONDS)


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

    def _lines(self, *args: str) -> list[str]:
        """What `ip -n <namespace> <args>` prints, one non-empty line each."""
        return [line.strip() for line in ip("-n", self.namespace, *args).splitlines() if line.strip()]

    def addresses(self) -> list[str]:
        """The namespace's addresses, IPv4 and IPv6, one a line."""
        return self._lines("-o", "addr", "show")

    def changes_within(self, seconds: float) -> str:
        """What the namespace's links, addresses and routes did over the next `seconds` (`ip monitor`)."""
        watch = subprocess.Popen(  # noqa: S603 - iproute2 on the test's own namespace
            [IP, "-n", self.namespace, "monitor", "link", "address", "route"], stdout=subprocess.PIPE, text=True
        )
        try:
            time.sleep(seconds)
        finally:
            watch.terminate()
        return watch.communicate(timeout=TIMEOUT_SECONDS)[0]

    def routes(self) -> list[str]:
        """The namespace's IPv4 routing table, one route a line."""
        return self._lines("-4", "route", "show")


@contextmanager
def another_host() -> Iterator[Host]:
    """A namespace with its own address on a veth link to this (the Docker) host; removed afterwards."""
    tag = secrets.token_hex(3)
    namespace, outside, inside = f"argusai-{tag}", f"av{tag}h", f"av{tag}n"
    third, fourth = secrets.randbelow(256), secrets.randbelow(64) * 4
    docker_host, address = f"{BENCHMARK_NET}.{third}.{fourth + 1}", f"{BENCHMARK_NET}.{third}.{fourth + 2}"
    ip("netns", "add", namespace)
    try:
        ip("netns", "exec", namespace, SYSCTL, "-q", "-w", *NO_IPV6)
        ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        try:
            ip("link", "set", inside, "netns", namespace)
            # A link moved in keeps the settings it was made with: its own IPv6 off too.
            ip("netns", "exec", namespace, SYSCTL, "-q", "-w", f"net.ipv6.conf.{inside}.disable_ipv6=1")
            ip("addr", "add", f"{docker_host}/{PREFIX_LENGTH}", "dev", outside)
            ip("link", "set", outside, "up")
            ip("-n", namespace, "addr", "add", f"{address}/{PREFIX_LENGTH}", "dev", inside)
            ip("-n", namespace, "link", "set", inside, "up")
            ip("-n", namespace, "link", "set", "lo", "up")
            _wait_for_carrier(namespace, inside)
            yield Host(namespace=namespace, address=address, docker_host=docker_host)
        finally:
            # Removing one end removes the pair.
            subprocess.run(  # noqa: S603 - iproute2, the test's own link
                [IP, "link", "del", outside], capture_output=True, timeout=TIMEOUT_SECONDS, check=False
            )
    finally:
        ip("netns", "del", namespace)

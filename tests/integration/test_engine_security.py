"""PostgreSQL is reachable only over its internal network, and only with the right password.

Nothing here sends a packet anywhere but the test's own Docker network: isolation is shown by reading
the engine's rules (iptables) and the container's routing table, never by trying to get out.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest

from .conftest import LIBPQ_URL, POSTGRES_IMAGE, Stack

pytestmark = pytest.mark.integration

# Each attempt prints its own exit code, so one throwaway container checks all three.
AUTH_PROBES = (
    'psql -h postgres -U "$PGUSER" -d "$PGDATABASE" -w -tA -c "SELECT 1"; echo "rc-nopassword=$?"; '
    'PGPASSWORD=not-the-password psql -h postgres -U "$PGUSER" -d "$PGDATABASE" -w -tA -c "SELECT 1"; '
    'echo "rc-wrong=$?"; '
    f'psql {LIBPQ_URL} -w -tA -c "SELECT \'right-password-ok\'"; echo "rc-right=$?"'
)
PSQL_CONNECTION_FAILED = 2  # psql's exit code when it cannot connect / authenticate
DEFAULT_ROUTE = ipaddress.ip_network("0.0.0.0/0")
ON_LINK = ipaddress.ip_address(0)  # the gateway field of a route to a directly attached subnet


def test_database_refuses_missing_and_wrong_password(stack: Stack) -> None:
    """Over the database network, no password and a wrong one are refused; the right one works."""
    stack.up({"database": "postgres", "backupEnabled": False})
    code, out = stack.oneoff(
        POSTGRES_IMAGE,
        ["sh", "-c", AUTH_PROBES],
        network=stack.physical("db"),
        environment={"DATABASE_URL": stack.output("databaseUrl"), "PGUSER": "argusai", "PGDATABASE": "argusai"},
    )
    assert code == 0, out
    assert f"rc-nopassword={PSQL_CONNECTION_FAILED}" in out
    assert "no password supplied" in out
    assert f"rc-wrong={PSQL_CONNECTION_FAILED}" in out
    assert 'password authentication failed for user "argusai"' in out
    # The control: same network, same host name, right password.
    assert "right-password-ok" in out
    assert "rc-right=0" in out


def _routes(pid: int) -> list[tuple[str, ipaddress.IPv4Network, ipaddress.IPv4Address]]:
    """IPv4 routes of a process's network namespace: (interface, destination, gateway)."""
    routes = []
    for line in Path(f"/proc/{pid}/net/route").read_text().splitlines()[1:]:
        iface, dest, gateway, _flags, _ref, _use, _metric, mask, *_ = line.split()
        # The kernel prints addresses as little-endian hex.
        to_ip = lambda h: socket.inet_ntoa(struct.pack("<I", int(h, 16)))  # noqa: E731
        network = ipaddress.ip_network(f"{to_ip(dest)}/{to_ip(mask)}")
        routes.append((iface, network, ipaddress.ip_address(to_ip(gateway))))
    return routes


def _iptables_rules() -> str:
    tool = shutil.which("iptables-save")
    if tool is None:
        pytest.skip("iptables-save not found: cannot read the engine's isolation rules")
    return subprocess.run(  # noqa: S603 - fixed tool, no input from outside
        [tool], capture_output=True, text=True, check=True
    ).stdout


def test_postgres_is_isolated(stack: Stack) -> None:
    """No published port; only internal networks; the engine drops what would leave the subnet."""
    stack.up({"database": "postgres", "backupEnabled": False})
    postgres = stack.container("postgres").attrs

    assert not postgres["HostConfig"]["PortBindings"]
    assert all(not bindings for bindings in (postgres["NetworkSettings"]["Ports"] or {}).values())
    attached = postgres["NetworkSettings"]["Networks"]
    assert sorted(attached) == [stack.physical("db")]
    network = stack.client.networks.get(stack.physical("db")).attrs
    assert network["Internal"] is True
    subnet = ipaddress.ip_network(network["IPAM"]["Config"][0]["Subnet"])
    gateway = ipaddress.ip_address(network["IPAM"]["Config"][0]["Gateway"])
    bridge = network["Options"].get("com.docker.network.bridge.name") or f"br-{network['Id'][:12]}"

    # dockerd 20.10 marks an internal bridge with two DROP rules in DOCKER-ISOLATION-STAGE-1: nothing
    # from outside the subnet may be forwarded onto the bridge, nothing from the bridge may be forwarded
    # to a destination outside it. It also gives the subnet no MASQUERADE (NAT) rule and, with no
    # published port, no DNAT rule: there is no path off the host and none into the database.
    rules = _iptables_rules()
    assert f"-A DOCKER-ISOLATION-STAGE-1 ! -s {subnet} -o {bridge} -j DROP" in rules
    assert f"-A DOCKER-ISOLATION-STAGE-1 ! -d {subnet} -i {bridge} -j DROP" in rules
    assert not [r for r in rules.splitlines() if "MASQUERADE" in r and f"-s {subnet}" in r]
    pg_ip = attached[stack.physical("db")]["IPAddress"]
    assert not [r for r in rules.splitlines() if f"--to-destination {pg_ip}:" in r]

    # Inside the container's namespace: the subnet's own route and, on 20.10, still a default route via
    # the bridge's gateway address on the host. That route leads only into the host's FORWARD chain,
    # where the DROP rules above discard anything not addressed to the subnet itself.
    routes = _routes(postgres["State"]["Pid"])
    assert ("eth0", subnet, ON_LINK) in routes
    for iface, destination, via in routes:
        assert iface == "eth0"
        assert destination == subnet or (destination == DEFAULT_ROUTE and via == gateway), (destination, via)


def _listening(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on `port` (read from /proc, no traffic)."""
    found = set()
    for path, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(path).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hexport = local.partition(":")
            if state != "0A" or int(hexport, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # /proc prints the address as 32-bit words in host byte order.
            raw = b"".join(struct.pack("<I", *struct.unpack(">I", raw[i : i + 4])) for i in range(0, len(raw), 4))
            found.add(socket.inet_ntop(family, raw))
    return found


@pytest.mark.parametrize(
    ("bind", "expected"),
    [("0.0.0.0", {"0.0.0.0"}), ("::", {"::"}), ("127.0.0.1", {"127.0.0.1"})],  # noqa: S104
)
def test_bind_address_publishes_exactly_there(stack: Stack, bind: str, expected: set[str]) -> None:
    """`0.0.0.0` is IPv4 only, `::` IPv6 only (as dockerd 20.10 binds them), an address that one only.

    A second `up` plans nothing: the bindings read back in the order they are declared.
    """
    config = {"bindAddress": bind, "backupEnabled": False}
    stack.up(config)
    assert _listening(stack.backend_port) == expected
    assert stack.plan(config).summary() == []

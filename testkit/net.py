"""Loopback helpers shared by the tests, the registry kit and the benchmarks."""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
from pathlib import Path

LOOPBACK = "127.0.0.1"
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - a port is free only when no address of the host holds it
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_LOW = 32768
# The kit's ports lie just below the kernel's ephemeral range, which the kernel hands to outgoing
# connections (a stack's published port taken by a passing connection is the race this avoids).
KIT_RANGE_WIDTH = 12000
# How many ports are tried before giving up: the bound only keeps a crowded host from spinning.
MAX_TRIES = 1000

_handed_out: set[int] = set()
_lock = threading.Lock()


def _worker_share() -> tuple[int, int]:
    """(this pytest-xdist worker's index, how many workers); (0, 1) outside a parallel run."""
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), 1)
    match = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return (int(match.group(1)) % count if match else 0), count


def kit_ports() -> range:
    """The ports this process may hand out: its worker's own block of the kit's range."""
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = DEFAULT_EPHEMERAL_LOW
    index, count = _worker_share()
    block = KIT_RANGE_WIDTH // count
    start = low - KIT_RANGE_WIDTH + index * block
    return range(start, start + block)


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((ANY_ADDRESS, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A TCP port nothing on the host listens on right now, never handed out before in this process.

    The kernel's `bind(0)` may give back a port it gave before once that socket is closed, so two calls
    for one stack (its backend and its proxy) could return the same port: the kit picks the port itself
    and remembers what it handed out. Parallel workers each pick from their own block, so two workers
    never hand out the same port. Whoever binds the port next (another program) may still take it.
    """
    ports = kit_ports()
    with _lock:
        for _ in range(MAX_TRIES):
            port = secrets.choice(ports)
            if port not in _handed_out and _is_free(port):
                _handed_out.add(port)
                return port
    message = f"no free port in {ports.start}-{ports.stop - 1} after {MAX_TRIES} tries"
    raise RuntimeError(message)

"""The test kit's free-port helper: two callers never get the same port."""

from __future__ import annotations

import pytest

from testkit.net import free_port, kit_ports

# Enough calls that the kernel's bind(0), left alone, hands some port out twice (about 18 repeats are
# expected in Linux's default 28,232-port ephemeral range).
CALLS = 1000


def test_no_port_is_handed_out_twice() -> None:
    """One stack asks for its backend's and its proxy's port in turn: they must differ."""
    ports = [free_port() for _ in range(CALLS)]
    assert len(set(ports)) == len(ports)


def test_parallel_workers_take_disjoint_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two pytest-xdist workers each take only their own block, so they never hand out the same port."""
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    taken = {}
    for worker in (0, 1):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", f"gw{worker}")
        taken[worker] = {free_port() for _ in range(50)}
        assert taken[worker] <= set(kit_ports())
    assert not taken[0] & taken[1]

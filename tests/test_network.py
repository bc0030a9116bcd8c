"""Networks: an app bridge, and an internal database network only in PostgreSQL mode."""

from __future__ import annotations

from components.naming import Naming
from components.network import Networks, NetworksArgs
from testkit.harness import NETWORK, run_components

NAMING = Naming(prefix="argusai", stack="unit")


def test_postgres_mode_adds_internal_db_network() -> None:
    """The db network is internal (no route off the host); the app network is an ordinary bridge."""
    _, deployment = run_components(lambda: Networks("net", NetworksArgs(naming=NAMING, database_network=True)))
    app, db = deployment.network("app"), deployment.network("db")
    assert app.plain("name") == "argusai-unit-app"
    assert not app.plain("internal")
    assert db.plain("name") == "argusai-unit-db"
    assert db.plain("internal") is True
    assert app.plain("driver") == db.plain("driver") == "bridge"
    assert app.delete_before_replace
    assert db.delete_before_replace


def test_sqlite_mode_has_only_app_network() -> None:
    """No database, no database network."""
    _, deployment = run_components(lambda: Networks("net", NetworksArgs(naming=NAMING, database_network=False)))
    assert [r.plain("name") for r in deployment.of_type(NETWORK)] == ["argusai-unit-app"]

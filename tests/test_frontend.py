"""Frontend: talks to the backend by alias, healthcheck, published port, optional."""

from __future__ import annotations

from components.frontend import Frontend, FrontendArgs
from components.naming import Naming
from testkit.harness import Deployment, run_components, run_program


def test_component_with_args_passed_in() -> None:
    """BACKEND_URL, app network only, port, healthcheck, wait, replace order."""
    _, deployment = run_components(
        lambda: Frontend(
            "web",
            FrontendArgs(
                naming=Naming("argusai", "unit"),
                image="example/frontend:1",
                backend_url="http://backend:8000",
                app_network="argusai-unit-app",
                host_port=3300,
                bind_address="0.0.0.0",  # noqa: S104 - a declared value under test, nothing binds
                follow_registry=False,
            ),
        )
    )
    c = deployment.container("frontend")
    assert c.plain("envs") == ["BACKEND_URL=http://backend:8000"]
    assert [n["name"] for n in c.plain("networksAdvanced")] == ["argusai-unit-app"]
    assert c.plain("ports")[0]["external"] == 3300
    assert c.plain("healthcheck")["tests"][:2] == ["CMD", "node"]
    assert c.plain("wait") is True
    assert c.delete_before_replace


def test_frontend_waits_for_backend(prod: Deployment) -> None:
    """The frontend is created once the backend is healthy."""
    assert prod.container("backend").urn in prod.container("frontend").dependencies
    assert prod.outputs["frontendUrl"].value == "http://localhost:3100"


def test_empty_image_disables_frontend() -> None:
    """`frontendImage: ""` deploys no frontend and exports no frontendUrl."""
    deployment = run_program("embedded", {"frontendImage": ""})
    roles = [r.plain("name") for r in deployment.registrations if r.type.endswith("container:Container")]
    assert "argusai-embedded-frontend" not in roles
    assert "frontendUrl" not in deployment.outputs

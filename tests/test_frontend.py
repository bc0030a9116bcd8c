"""Frontend: talks to the backend by alias, healthcheck, behind the proxy, its image checked first, optional."""

from __future__ import annotations

from components.frontend import BAKED_API_URL, Frontend, FrontendArgs
from components.naming import Naming
from components.scripts import FRONTEND_ORIGIN, IN_CONTAINER
from testkit.harness import Deployment, run_components, run_program


def test_component_with_args_passed_in() -> None:
    """BACKEND_URL, app network only, no port of its own, healthcheck, wait; checked, then served rewritten."""
    _, deployment = run_components(
        lambda: Frontend(
            "web",
            FrontendArgs(
                naming=Naming("argusai", "unit"),
                image="example/frontend:1",
                backend_url="http://backend:8000",
                app_network="argusai-unit-app",
                log_volume="argusai-unit-backups",
                follow_registry=False,
            ),
        )
    )
    c, check = deployment.container("frontend"), deployment.container("frontend-check")
    assert c.env() == {
        "BACKEND_URL": "http://backend:8000",
        "FRONTEND_IMAGE": "example/frontend:1",
        "BAKED_API_URL": BAKED_API_URL,
    }
    assert c.plain("entrypoints") == [*FRONTEND_ORIGIN.argv, "serve"]
    assert f"{IN_CONTAINER}/frontend_origin.sh" in c.uploaded()
    assert [n["name"] for n in c.plain("networksAdvanced")] == ["argusai-unit-app"]
    assert not c.plain("ports")
    # The image is checked before the running frontend is touched, by the same script.
    assert check.urn in c.dependencies
    assert check.plain("image") == c.plain("image")
    assert check.plain("networkMode") == "none"
    assert check.uploaded() == c.uploaded()
    assert c.plain("healthcheck")["tests"][:2] == ["CMD", "node"]
    assert c.plain("wait") is True
    assert c.delete_before_replace


def test_frontend_starts_beside_the_backend(prod: Deployment) -> None:
    """The frontend and its check wait for what must pass before the backend serves (the release's steps).

    Not for the backend's start: they start beside it.
    """
    backend = prod.container("backend")
    for role in ("frontend", "frontend-check"):
        dependencies = prod.container(role).dependencies
        assert backend.urn not in dependencies
        assert prod.container("release-steps").urn in dependencies
    assert prod.outputs["frontendUrl"].value == prod.outputs["url"].value


def test_empty_image_disables_frontend() -> None:
    """`frontendImage: ""` deploys no frontend and exports no frontendUrl."""
    deployment = run_program("embedded", {"frontendImage": ""})
    roles = [r.plain("name") for r in deployment.registrations if r.type.endswith("container:Container")]
    assert "argusai-embedded-frontend" not in roles
    assert "frontendUrl" not in deployment.outputs

"""Proxy and the way in: HTTPS off leaves the stack as it was; HTTPS on puts Caddy in front as the one origin."""

from __future__ import annotations

import pytest

from components.https.caddyfile import HOLD_SECONDS
from components.https.proxy import CADDYFILE_PATH
from components.https.sources import STACK_CA_ROOT
from components.settings import ConfigError
from testkit.harness import CONTAINER, Deployment, commit, run_program
from testkit.pki import Certificates
from testkit.plan import plan

HTTPS = {"tlsHostnames": ["argusai.lan"], "httpsPort": 8443, "httpPort": 8080}


def _caddyfile(deployment: Deployment, role: str = "proxy") -> str:
    uploads = deployment.container(role).plain("uploads")
    return next(u["content"] for u in uploads if u["file"] == CADDYFILE_PATH)


@pytest.fixture(scope="module")
def https() -> Deployment:
    """The embedded stack with HTTPS on for a .lan name (the stack's own CA)."""
    return run_program("embedded", HTTPS)


def test_plain_http_is_one_origin_through_the_proxy(embedded: Deployment) -> None:
    """HTTPS off: the proxy serves the app on httpPort for any host name; the old ports redirect or pass on."""
    assert not embedded.container("backend").plain("ports")
    assert not embedded.container("frontend").plain("ports")
    assert [p["external"] for p in embedded.container("proxy").plain("ports")] == [80]
    config = _caddyfile(embedded)
    assert "auto_https off" in config
    app = config.split("http://:80 {")[1].split("\n}\n")[0]
    assert "@backend path /api/* /ws /ws/* /health" in app
    assert "reverse_proxy backend:8000" in app
    assert "reverse_proxy frontend:3000" in app
    assert "http://:3000" not in config
    assert "http://:8000" not in config
    # The old ports, beside it in the proxy's image: the old frontend address sends the browser to the app,
    # on the same host name; the old backend address is the API's.
    old = embedded.container("old-ports")
    assert old.plain("image") == embedded.container("proxy").plain("image")
    assert sorted(p["external"] for p in old.plain("ports")) == [3000, 8000]
    config = _caddyfile(embedded, "old-ports")
    assert "auto_https off" in config
    assert "http://:3000 {\n\tredir http://{host}{uri} 308\n}" in config
    api = config.split("http://:8000 {")[1].split("\n}\n")[0]
    assert "reverse_proxy backend:8000" in api
    assert "frontend" not in api
    assert embedded.outputs["url"].value == "http://localhost"
    assert embedded.outputs["frontendUrl"].value == "http://localhost"
    assert embedded.outputs["backendUrl"].value == "http://localhost:8000"
    assert "tlsSource" not in embedded.outputs


def test_only_the_proxy_publishes_ports(https: Deployment) -> None:
    """With HTTPS on, backend and frontend are reached only through the proxy, which publishes both ports."""
    assert not https.container("backend").plain("ports")
    assert not https.container("frontend").plain("ports")
    ports = https.container("proxy").plain("ports")
    assert [(p["internal"], p["external"]) for p in ports] == [(8080, 8080), (8443, 8443)]
    assert https.outputs["url"].value == "https://argusai.lan:8443"
    assert "backendUrl" not in https.outputs


def test_backend_cookie_secure_and_cors_origin(https: Deployment) -> None:
    """COOKIE_SECURE true (even though the key says false) and CORS_ORIGINS = the HTTPS origin; no SSL_* files."""
    envs = https.container("backend").plain("envs")
    assert "COOKIE_SECURE=true" in envs
    assert "CORS_ORIGINS=https://argusai.lan:8443" in envs
    assert not [e for e in envs if e.startswith(("SSL_CERT_FILE", "SSL_KEY_FILE"))]


def test_caddyfile_routes_and_holds(https: Deployment) -> None:
    """/api/ and /ws to the backend, the rest to the frontend, each held while the upstream is away."""
    config = _caddyfile(https)
    assert "@backend path /api/* /ws /ws/* /health" in config
    assert "reverse_proxy backend:8000" in config
    assert "reverse_proxy frontend:3000" in config
    assert config.count(f"lb_try_duration {HOLD_SECONDS}s") == 2
    assert "max_size 50MB" in config
    assert "redir https://argusai.lan:8443{uri} 308" in config


def test_stack_ca_no_hsts_and_kept_volume(https: Deployment) -> None:
    """The stack's CA: no HSTS (devices trust it only once installed), its volume protected and retained."""
    config = _caddyfile(https)
    assert "issuer internal" in config
    assert "Strict-Transport-Security" not in config
    volume = https.volume("proxy")
    assert volume.protect
    assert volume.retain_on_delete
    printer = https.container("proxy-ca")
    assert printer.plain("attach") is True
    assert printer.plain("logs") is True
    assert printer.plain("mustRun") is False
    assert STACK_CA_ROOT in printer.plain("command")[-1]
    assert printer.plain("volumes")[0]["readOnly"] is True


@pytest.mark.parametrize("stack", ["https", "embedded"])
def test_proxy_starts_beside_backend_and_frontend(stack: str, request: pytest.FixtureRequest) -> None:
    """The proxy waits for the release's steps, not for its upstreams' start (it holds requests until they answer)."""
    deployment: Deployment = request.getfixturevalue(stack)
    deps = deployment.container("proxy").dependencies
    assert deployment.container("release-steps").urn in deps
    assert deployment.container("backend").urn not in deps
    assert deployment.container("frontend").urn not in deps


def test_old_ports_wait_for_whoever_held_them(embedded: Deployment) -> None:
    """Stacks from before the proxy: the backend and the frontend published 8000 and 3000; the last version's proxy."""
    deps = embedded.container("old-ports").dependencies
    for role in ("backend", "frontend", "proxy"):
        assert embedded.container(role).urn in deps


def test_https_has_no_old_ports(https: Deployment) -> None:
    """With HTTPS on, the old ports are not published (backendPort and frontendPort are plain HTTP's)."""
    assert not [c for c in https.of_type(CONTAINER) if c.plain("name").endswith("-old-ports")]


def test_hostname_aliases_on_app_network(https: Deployment) -> None:
    """Containers reach the origin by its name (an ACME server validating, the frontend's server side)."""
    aliases = https.container("proxy").plain("networksAdvanced")[0]["aliases"]
    assert "argusai.lan" in aliases


def test_acme_for_public_names_sends_hsts() -> None:
    """A public name takes ACME (Caddy's default CA) and HSTS; the e-mail goes to the CA."""
    deployment = run_program("embedded", {"tlsHostnames": ["argusai.example.com"], "acmeEmail": "ops@example.com"})
    config = _caddyfile(deployment)
    assert "email ops@example.com" in config
    assert "renew_interval 60s" in config  # short-lived ACME certificates are renewed in time
    assert "issuer internal" not in config
    assert 'Strict-Transport-Security "max-age=31536000"' in config
    assert deployment.outputs["tlsSource"].value == "acme"
    assert "https_port 443" in config
    assert deployment.outputs["url"].value == "https://argusai.example.com"


def test_private_acme_server_with_its_ca() -> None:
    """A private ACME server (acmeDirectory + acmeCaCert): the CA is uploaded and named in the Caddyfile."""
    ca = Certificates.for_names("ca.lan").ca
    deployment = run_program(
        "embedded",
        {"tlsHostnames": ["argusai.lan"], "acmeDirectory": "https://ca.lan:9000/acme/acme/directory", "acmeCaCert": ca},
    )
    config = _caddyfile(deployment)
    assert "acme_ca https://ca.lan:9000/acme/acme/directory" in config
    assert "acme_ca_root /etc/caddy/tls/acme-ca.pem" in config
    uploads = {u["file"]: u["content"] for u in deployment.container("proxy").plain("uploads")}
    assert uploads["/etc/caddy/tls/acme-ca.pem"].strip() == ca.strip()


def test_mixed_names_refused_naming_key() -> None:
    """Public and private names together under auto: refused before anything is declared."""
    with pytest.raises(ConfigError, match="argusai:tlsHostnames' mixes public names") as err:
        run_program("embedded", {"tlsHostnames": ["argusai.example.com", "argusai.lan"]})
    assert not err.value.registrations  # type: ignore[attr-defined]


def test_tls_keys_without_https_refused() -> None:
    """A certificate key with HTTPS off is a mistake, not something to ignore."""
    with pytest.raises(ConfigError, match="argusai:acmeEmail' is used only with HTTPS on"):
        run_program("embedded", {"acmeEmail": "ops@example.com"})


def test_ports_must_differ() -> None:
    """The plain HTTP and the HTTPS port cannot be one port."""
    with pytest.raises(ConfigError, match="argusai:httpPort' must differ from argusai:httpsPort"):
        run_program("embedded", {**HTTPS, "httpPort": 8443})


def test_letsencrypt_cannot_cover_private_names() -> None:
    """ACME without a private ACME server refuses .lan names."""
    with pytest.raises(ConfigError, match="argusai:tlsSource' acme with Let's Encrypt cannot cover argusai.lan"):
        run_program("embedded", {**HTTPS, "tlsSource": "acme"})


def test_second_run_plans_nothing(https: Deployment) -> None:
    """Run again over the state the first run left: no resource changes (the CA printer included)."""
    state = commit(https)
    again = run_program("embedded", HTTPS, prior=state)
    steps = plan(state, again)
    assert [s for s in steps.steps if s.op != "same"] == []

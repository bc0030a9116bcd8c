"""The real ArgusAI, as published, deployed by the program and used in a real browser on ANOTHER host.

Who uses this program opens ArgusAI from a phone or a laptop, never from a browser on the server. So the
browser (Debian's chromium, headless) runs in a network namespace of its own (`testkit.netns`), with its own
address on a veth link to the Docker host and no other route, and opens the app at the Docker host's
address on that link. The images are the release's as published: the frontend with the API URL its
Dockerfile bakes in (`http://localhost:8000`), the backend with its own requirements and no PostgreSQL
driver (the kit's release image with its driver uninstalled). Only config a user would set:

- the defaults over plain HTTP, SQLite; then PostgreSQL, the driver installed at `up` from the kit's own
  package index on the stack's network (as a host behind a mirror sets `pythonIndexUrl`), after the same
  switch with the index unreachable stopped with the key named and the old deployment serving;
- HTTPS with the stack's own CA (the browser trusts the exported CA); then the operator's own
  certificate, with the operator's own images (built for one origin, a driver inside).

Each time: the login page, the real login form with the password the stack exports, the dashboard with
its live feeds (the event stream answering 200, the `/ws` WebSocket open), the cameras page, no failed
request and no page error; every page saved as a screenshot (`artifacts/`).

Also here: the browser kit's own check that it trusts exactly the CA it is given (no TLS error ignored).
"""

from __future__ import annotations

import http.server
import os
import secrets
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import docker
import pytest
from docker.errors import ContainerError, NotFound
from playwright.sync_api import Error as PlaywrightError

from components.database.driver import DRIVERS
from testkit import argusai_ui as ui
from testkit import browser, netns
from testkit.applier import ApplyError
from testkit.images.derive import derive_by_running
from testkit.images.recipes import ARGUSAI_BACKEND, ARGUSAI_FRONTEND, ARGUSAI_FRONTEND_SAME_ORIGIN
from testkit.net import free_port
from testkit.pki import Certificates
from testkit.pyindex import package_index

from .conftest import BACKEND_IMAGE, Stack, record_result, require_release_image, wait_for
from .test_argusai_deploy import admin_password
from .test_tls import ca_of

pytestmark = [pytest.mark.browser, pytest.mark.argusai]

#: The release's frontend as published (`frontend/Dockerfile`, NEXT_PUBLIC_API_URL=http://localhost:8000).
FRONTEND_IMAGE = ARGUSAI_FRONTEND.tag
#: The event stream the dashboard opens on the page's origin, and the WebSocket of its notifications.
EVENT_STREAM = "/api/v1/system/ai-processing-stream"
WEBSOCKET_PATH = "/ws"
HEALTHY_TIMEOUT = 180
HTTP_OK = 200
WRONG_PASSWORD = "not-the-admin-password"
TLS_NAME = "argusai.lan"
#: An index nothing answers for: the name resolves nowhere on the stack's network.
GONE_INDEX = "http://pypi-gone:8080/simple"
#: How long the kit's page holds a handshake while the Docker host's network changes.
STALL_SECONDS = 3.0
#: How long a namespace handed out is watched for changes (the kernel's DAD takes 1 to 2 s).
SETTLE_SECONDS = 3.0
#: The bridge added on the Docker host: the half of RFC 2544's 198.18.0.0/15 the other hosts leave alone.
OTHER_NET = "198.19"
#: The published backend: the kit's release image with its driver uninstalled, its command and user kept.
BACKEND_RESTORE = ('CMD ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000"]', "USER appuser")
#: Run on the other host: the status of GET <argv[1]>, 0 when nothing answers.
HEALTH_PROBE = """
import sys, urllib.request
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=5).status)
except Exception:
    print(0)
"""


def _require(present: bool, message: str) -> None:
    """Skip (fail with REQUIRE_DOCKER=1) when something the test needs is missing."""
    if present:
        return
    if os.environ.get("REQUIRE_DOCKER") == "1":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def chromium() -> None:
    """Skip (fail with REQUIRE_DOCKER=1) without Debian's chromium and certutil."""
    _require(
        browser.CHROMIUM.is_file() and shutil.which(browser.CERTUTIL) is not None,
        f"{browser.CHROMIUM} or certutil is missing (`bash scripts/test-tools.sh` installs them)",
    )


def _image_present(client: docker.DockerClient, reference: str) -> bool:
    try:
        client.images.get(reference)
    except NotFound:
        return False
    return True


def _shown(path: Path) -> str:
    """A path as the result line shows it: relative to the repository when inside it."""
    try:
        return str(path.relative_to(browser.ROOT))
    except ValueError:
        return str(path)


def _failures(observed: browser.Observed) -> list[str]:
    """What the pages reported, but requests the page itself cancelled (`net::ERR_ABORTED`).

    Leaving a page aborts its open event stream: chromium records that as a failed request, though
    nothing failed.
    """
    return [line for line in observed.problems() if not line.endswith(": net::ERR_ABORTED")]


def published_backend(engine: docker.DockerClient, derived: list[str]) -> str:
    """The release's backend as published: the kit's release image with its PostgreSQL driver uninstalled."""
    image = derive_by_running(
        engine,
        ARGUSAI_BACKEND.tag,
        f"published-{secrets.token_hex(3)}",
        ["pip", "uninstall", "--yes", "psycopg", "psycopg-binary"],
        repository=ARGUSAI_BACKEND.repository,
        restore=BACKEND_RESTORE,
    )
    derived.append(image)
    with pytest.raises(ContainerError, match="No module named"):
        engine.containers.run(image, ["python", "-c", "import psycopg"], remove=True)
    return image


def _health(other: netns.Host, url: str) -> int:
    """GET `url` from the other host; its status (0 when nothing answered)."""
    done = other.run("python3", "-c", HEALTH_PROBE, url)
    return int(done.stdout.strip() or 0) if done.returncode == 0 else 0


def use_the_app(session: browser.BrowserSession, origin: str, password: str, name: str) -> list[Path]:
    """Log in through the form, the dashboard with its live feeds, the cameras page: no failure anywhere."""
    page = session.page
    ui.open_login(page, origin)
    shots = [session.screenshot(f"{name}-1-login")]
    with pytest.raises(ui.LoginRefused, match="Invalid username or password"):
        ui.submit_login(page, WRONG_PASSWORD)
    page.reload()
    ui.login(page, origin, password)
    main = page.locator("main")
    for text in ("System overview and statistics", "Total Events", "Active Cameras"):
        assert main.get_by_text(text, exact=True).first.is_visible(), f"the dashboard does not show {text!r}"
    shots.append(session.screenshot(f"{name}-2-dashboard"))
    # One origin: the live feeds reach the backend through the proxy (the event stream answers 200, the
    # WebSocket opens on the page's own origin) and nothing fails.
    with (
        page.expect_response(lambda response: response.url == origin + EVENT_STREAM) as stream,
        page.expect_websocket(lambda ws: urlsplit(ws.url).path == WEBSOCKET_PATH) as socket,
    ):
        _, dashboard = session.observe(lambda: ui.open_dashboard(page, origin))
    assert stream.value.status == HTTP_OK
    assert urlsplit(socket.value.url).netloc == urlsplit(origin).netloc
    assert not socket.value.is_closed(), "the /ws WebSocket closed"
    assert not _failures(dashboard), "the dashboard reported:\n" + "\n".join(_failures(dashboard))
    landed, cameras = session.observe(lambda: ui.open_cameras(page))
    assert landed == "empty"
    shots.append(session.screenshot(f"{name}-3-cameras"))
    assert not _failures(cameras), "the cameras page reported:\n" + "\n".join(_failures(cameras))
    assert {c["name"]: c for c in session.context.cookies()}[ui.SESSION_COOKIE]["httpOnly"] is True
    return shots


def _driver_log(stack: Stack) -> str:
    code, log = stack.oneoff(
        BACKEND_IMAGE, ["cat", "/b/steps/driver.log"], volumes={stack.physical("backups"): {"bind": "/b"}}
    )
    assert code == 0, log
    return log


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>hello</title><h1>served over TLS</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _TlsSite(http.server.ThreadingHTTPServer):
    """`_Hello` over TLS; each connection's handshake begins `stall` seconds after it is accepted."""

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, stall: float = 0) -> None:
        super().__init__(address, _Hello)
        self.context = context
        self.stall = stall

    def finish_request(self, request: socket.socket, client_address: tuple[str, int]) -> None:  # type: ignore[override]
        """In the connection's own thread: the stall, then the handshake, then the request."""
        time.sleep(self.stall)
        try:
            wrapped = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # a browser that refuses the certificate ends the handshake
        super().finish_request(wrapped, client_address)


@dataclass(frozen=True)
class TlsSite:
    """The kit's HTTPS page on another host: its URL, that host, its CA, an unrelated CA, its server."""

    url: str
    host: netns.Host
    ca: str
    other_ca: str
    server: _TlsSite


@pytest.fixture
def tls_site(tmp_path: Path) -> Iterator[TlsSite]:
    """An HTTPS page for `argusai.lan` at the Docker host's address on another host's link."""
    made = Certificates.for_names(TLS_NAME, ca_name="argusai browser-kit test CA")
    (tmp_path / "cert.pem").write_bytes(made.server_cert)
    (tmp_path / "key.pem").write_bytes(made.server_key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    with netns.another_host() as other:
        port = free_port()
        server = _TlsSite((other.docker_host, port), context)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield TlsSite(f"https://{TLS_NAME}:{port}/", other, made.ca, made.other_ca, server)
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


def test_browser_trusts_only_the_given_ca(tls_site: TlsSite, chromium: None) -> None:
    """The kit's trust: the page loads with its CA trusted, and fails as for a user with another or none."""
    url = tls_site.url
    with browser.browser_session(
        trust_ca=tls_site.ca, hosts=[TLS_NAME], prefix="kit-tls-", host=tls_site.host
    ) as session:
        response = session.page.goto(url)
        assert response is not None
        assert response.status == 200
        assert session.page.locator("h1").inner_text() == "served over TLS"
        assert session.observed.failed(url) == []
        session.screenshot("trusted")
    for trust in (tls_site.other_ca, None):
        with browser.browser_session(trust_ca=trust, hosts=[TLS_NAME], host=tls_site.host) as session:
            with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
                session.page.goto(url)
            assert [r.reason for r in session.observed.failed(url)] == ["net::ERR_CERT_AUTHORITY_INVALID"]


@contextmanager
def _network_added_here(after: float) -> Iterator[None]:
    """`after` seconds in, a bridge with an address on this (the Docker) host, as `docker network create` adds.

    Removed on leaving.
    """
    name = f"argusai-nc{secrets.token_hex(2)}"
    address = f"{OTHER_NET}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}/32"

    def add() -> None:
        time.sleep(after)
        netns.ip("link", "add", name, "type", "bridge")
        netns.ip("addr", "add", address, "dev", name)
        added.set()

    added = threading.Event()
    thread = threading.Thread(target=add, daemon=True)
    thread.start()
    try:
        yield
        thread.join(timeout=netns.TIMEOUT_SECONDS)
        assert added.is_set(), f"the bridge {name} was not added"
    finally:
        with suppress(RuntimeError):  # not there when the adding failed
            netns.ip("link", "del", name)


def test_a_browser_on_another_host_rides_out_the_docker_hosts_network_changes(
    tls_site: TlsSite, chromium: None
) -> None:
    """A network created on the Docker host while a page loads does not fail the other host's browser.

    Chromium fails every connection in flight with `ERR_NETWORK_CHANGED` when an address of its own host
    changes; a stack on another worker creates networks at any time. Here the page's TLS handshake is held
    for STALL_SECONDS and a bridge gets an address on the Docker host in the meantime.
    """
    tls_site.server.stall = STALL_SECONDS
    with browser.browser_session(trust_ca=tls_site.ca, hosts=[TLS_NAME], host=tls_site.host) as session:
        with _network_added_here(after=STALL_SECONDS / 3):
            response = session.page.goto(tls_site.url)
        assert response is not None
        assert response.status == HTTP_OK
        assert session.observed.failed(tls_site.url) == []


def test_another_host_is_settled_when_handed_out() -> None:
    """Nothing changes in the namespace after `another_host()` yields: no late address, the link up."""
    with netns.another_host() as other:
        # Longer than the kernel's duplicate address detection, after which it adds an IPv6 link-local address.
        changes = other.changes_within(SETTLE_SECONDS)
        addresses = "\n".join(other.addresses())
    assert changes.strip() == "", f"the namespace changed after it was handed out:\n{changes}"
    assert "inet6" not in addresses, addresses
    assert f"inet {other.address}/" in addresses, addresses


def test_published_images_from_another_host_over_http_then_postgres(
    stack: Stack, engine: docker.DockerClient, chromium: None, derived: list[str]
) -> None:
    """The defaults, with the images as published, from another host; then PostgreSQL with the driver."""
    require_release_image(engine)
    _require(_image_present(engine, FRONTEND_IMAGE), f"{FRONTEND_IMAGE} is missing (testkit.images.build)")
    backend_image = published_backend(engine, derived)
    started = time.monotonic()
    with netns.another_host() as other:
        # Only the link's own subnet and no default route: the Docker host's address on it is all it reaches.
        routes = other.routes()
        assert len(routes) == 1, routes
        assert routes[0].startswith(f"{other.docker_host.rsplit('.', 1)[0]}."), routes
        config = {
            "backendImage": backend_image,
            "frontendImage": FRONTEND_IMAGE,
            "schemaGate": True,
            "bindAddress": other.docker_host,
        }
        stack.up(config)
        origin = f"http://{other.docker_host}:{stack.http_port}"
        wait_for("the release's /health", lambda: _health(other, f"{origin}/health") == HTTP_OK, HEALTHY_TIMEOUT)
        password = admin_password(stack)
        deployed = time.monotonic()

        with browser.browser_session(host=other, prefix="another-host-http-") as session:
            shots = use_the_app(session, origin, password, "sqlite")
            # A bookmark of the old frontend address lands on the app.
            session.page.goto(f"http://{other.docker_host}:{stack.frontend_port}/cameras")
            assert session.page.url == f"{origin}/cameras"

        # PostgreSQL, the driver's index unreachable: stopped, the key named, the old backend serving.
        serving = stack.container("backend").id
        server = {**config, "database": "postgres", "pythonIndexUrl": GONE_INDEX}
        with pytest.raises(ApplyError, match="driver"):
            stack.apply(stack.program(server))
        assert "argusai:pythonIndexUrl" in _driver_log(stack)
        assert stack.container("backend").id == serving
        assert _health(other, f"{origin}/health") == HTTP_OK

        # The same switch, the index as a mirror on the stack's network: the driver installed, the data moved.
        packages = DRIVERS["psycopg"][1]
        with package_index(engine, BACKEND_IMAGE, stack.physical("app"), stack.name, packages) as index_url:
            stack.up({**server, "pythonIndexUrl": index_url})
        assert f"driver: installed {' '.join(packages)}" in _driver_log(stack)
        env = dict(item.split("=", 1) for item in stack.container("backend").attrs["Config"]["Env"])
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
        wait_for("the release's /health", lambda: _health(other, f"{origin}/health") == HTTP_OK, HEALTHY_TIMEOUT)
        with browser.browser_session(host=other, prefix="another-host-postgres-") as session:
            shots += use_the_app(session, origin, password, "postgres")

    for path in shots:
        assert path.stat().st_size > 0
    record_result(
        f"RESULT browser from another host ({other.address}): the published images over http, then PostgreSQL "
        f"with the driver from the kit's index (an unreachable index refused first, the old backend serving): "
        f"login, dashboard with the event stream and /ws, cameras, no errors; first deploy "
        f"{deployed - started:.0f}s, whole {time.monotonic() - started:.0f}s; screenshots in {_shown(shots[0].parent)}"
    )


def test_https_from_another_host(stack: Stack, engine: docker.DockerClient, chromium: None) -> None:
    """HTTPS from another host: the stack's CA with the published frontend; the operator's certificate and images."""
    require_release_image(engine)
    _require(_image_present(engine, FRONTEND_IMAGE), f"{FRONTEND_IMAGE} is missing (testkit.images.build)")
    started = time.monotonic()
    https_port = free_port()
    with netns.another_host() as other:
        origin = f"https://{TLS_NAME}:{https_port}"
        config = {
            "backendImage": ARGUSAI_BACKEND.tag,
            "frontendImage": FRONTEND_IMAGE,
            "schemaGate": True,
            "tlsHostnames": [TLS_NAME],
            "httpsPort": https_port,
            "bindAddress": other.docker_host,
        }
        stack.up(config)
        ca = ca_of(stack, config)
        password = admin_password(stack)
        with browser.browser_session(
            trust_ca=ca, hosts=[TLS_NAME], host=other, prefix="another-host-https-"
        ) as session:
            shots = use_the_app(session, origin, password, "stack-ca")
            cookie = {c["name"]: c for c in session.context.cookies()}[ui.SESSION_COOKIE]
            assert (cookie["domain"], cookie["secure"]) == (TLS_NAME, True)
            # Typed without https://: the proxy's plain HTTP port sends the browser to the HTTPS origin.
            session.page.goto(f"http://{TLS_NAME}:{stack.http_port}/cameras")
            assert session.page.url == f"{origin}/cameras"

        # The operator's own certificate, and the operator's own images: built for one origin, a driver in.
        pki = Certificates.for_names(TLS_NAME)
        operator = {
            **config,
            "frontendImage": ARGUSAI_FRONTEND_SAME_ORIGIN.tag,
            "tlsCertificate": pki.server_cert.decode() + pki.ca,
        }
        stack.up(operator, {"tlsPrivateKey": pki.server_key.decode()})
        with browser.browser_session(
            trust_ca=pki.ca, hosts=[TLS_NAME], host=other, prefix="another-host-operator-"
        ) as session:
            shots += use_the_app(session, origin, password, "operator")

    for path in shots:
        assert path.stat().st_size > 0
    record_result(
        f"RESULT browser from another host over https: the stack's CA with the published frontend, then the "
        f"operator's certificate with one-origin images: login, dashboard with the event stream and /ws, "
        f"cameras, no errors; {time.monotonic() - started:.0f}s; screenshots in {_shown(shots[0].parent)}"
    )

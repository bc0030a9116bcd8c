"""The real ArgusAI, deployed by the program with HTTPS off, used in a real browser (headless chromium).

The release's frontend image bakes `NEXT_PUBLIC_API_URL=http://localhost:8000` into its pages, so the
browser on the Docker host calls the backend at `http://localhost:8000` itself: the stack publishes the
default ports (backend 8000, frontend 3000) and the backend's CORS list names the origin the browser is
on (`http://localhost:3000`). The login goes through the form as a user's would; the session cookie is
checked as the browser stored it; every page is saved as a screenshot (`artifacts/`).

Measured with the release (and worth an operator's knowing): without `corsOrigins` a stack bound to
127.0.0.1 allows only `http://127.0.0.1:3000`, and a user on `http://localhost:3000` gets "Failed to
fetch" in the login form; browsing `http://127.0.0.1:3000` instead logs in, but the backend's cookie (set
by `localhost`, another site) is not stored and the session lives only in localStorage. Two live feeds of
the dashboard fail with the published image whatever the settings (LIVE_FEEDS).

Also here: the browser kit's own check that it trusts exactly the CA it is given (no TLS error ignored).
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.errors import NotFound
from playwright.sync_api import Error as PlaywrightError

from testkit import argusai_ui as ui
from testkit import browser
from testkit.images.recipes import ARGUSAI_BACKEND, ARGUSAI_FRONTEND, ARGUSAI_FRONTEND_SAME_ORIGIN, CADDY
from testkit.net import LOOPBACK, free_port
from testkit.pki import Certificates

from .conftest import Stack, record_result, require_release_image, wait_for
from .test_argusai_deploy import admin_password
from .test_tls import ca_of

pytestmark = [pytest.mark.browser, pytest.mark.argusai]

#: The release's frontend as published (`frontend/Dockerfile`, NEXT_PUBLIC_API_URL=http://localhost:8000).
FRONTEND_IMAGE = ARGUSAI_FRONTEND.tag
#: The ports the published frontend's pages expect: the backend's is baked into them.
BACKEND_PORT, FRONTEND_PORT = 8000, 3000
FRONTEND_URL = f"http://localhost:{FRONTEND_PORT}"
BACKEND_URL = f"http://localhost:{BACKEND_PORT}"
#: What an operator sets to serve the release over plain HTTP: cookies a browser keeps without HTTPS (the
#: program's defaults, set here as an operator would), and the origin users browse from. The derived
#: default would name the bind address (`http://127.0.0.1:3000`), not the `localhost` the pages call from.
PLAIN_HTTP = {
    "backendImage": ARGUSAI_BACKEND.tag,
    "schemaGate": True,
    "frontendImage": FRONTEND_IMAGE,
    "backendPort": BACKEND_PORT,
    "frontendPort": FRONTEND_PORT,
    "cookieSecure": False,
    "cookieSameSite": "lax",
    "corsOrigins": FRONTEND_URL,
}
#: Measured with the published frontend: two live feeds of the dashboard ("Recent AI Processing Activity",
#: Server-Sent Events; "Hot Activity", a WebSocket) are opened with relative URLs, i.e. on the frontend's
#: origin, whose Next server proxies /api/v1 to the rewrite baked at build time (`BACKEND_URL ||
#: NEXT_PUBLIC_API_URL` = http://localhost:8000): inside the frontend's container that is the container
#: itself, so they answer 500 or fail the handshake, and retry every few seconds (also after the dashboard
#: is left). The runtime BACKEND_URL the program sets does not change a standalone build's rewrites.
LIVE_FEEDS = ("/api/v1/system/ai-processing-stream", "/api/v1/system/ai-processing-hot-ws")
HEALTHY_TIMEOUT = 180
WRONG_PASSWORD = "not-the-admin-password"
TLS_NAME = "argusai.lan"


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


def _port_taken(port: int) -> str:
    """Why `port` cannot be published on 127.0.0.1 now ('' when it can)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As every server (docker-proxy too): connections of an earlier run in TIME_WAIT don't count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            return f"{LOOPBACK}:{port} is taken ({exc.strerror})"
    return ""


def _shown(path: Path) -> str:
    """A path as the result line shows it: relative to the repository when inside it."""
    try:
        return str(path.relative_to(browser.ROOT))
    except ValueError:
        return str(path)


def _backend_env(stack: Stack) -> dict[str, str]:
    env = stack.container("backend").attrs["Config"]["Env"]
    return dict(item.split("=", 1) for item in env)


def _unexpected(observed: browser.Observed) -> tuple[list[str], list[str]]:
    """(what the pages reported that is not the live feeds' known failure, the live feed URLs that failed)."""
    feeds = [f"http://localhost:{FRONTEND_PORT}{path}" for path in LIVE_FEEDS] + [
        f"ws://localhost:{FRONTEND_PORT}{path}" for path in LIVE_FEEDS
    ]

    def feed(*texts: str) -> str:
        return next((url for url in feeds for text in texts if url in text), "")

    unexpected = [
        *(str(e) for e in observed.console_errors() if not feed(e.text, e.url)),
        *(f"page error: {error}" for error in observed.page_errors),
        *(f"failed request: {r}" for r in observed.failed_requests if not feed(r.url)),
    ]
    failed_feeds = sorted({feed(r.url) for r in observed.failed_requests} - {""})
    return unexpected, failed_feeds


def test_default_stack_over_http(stack: Stack, engine: docker.DockerClient, chromium: None) -> None:
    """HTTPS off, SQLite: log in through the real UI, the dashboard, the cameras page, no error anywhere."""
    require_release_image(engine)
    _require(
        _image_present(engine, FRONTEND_IMAGE),
        f"{FRONTEND_IMAGE} is missing (`python -m testkit.images.build --only argusai-frontend` builds it)",
    )
    taken = [reason for reason in (_port_taken(BACKEND_PORT), _port_taken(FRONTEND_PORT)) if reason]
    assert not taken, (
        f"the published frontend calls {BACKEND_URL} (baked into its pages), so this test needs host ports "
        f"{BACKEND_PORT} and {FRONTEND_PORT}: {'; '.join(taken)}"
    )
    started = time.monotonic()
    stack.backend_port, stack.frontend_port = BACKEND_PORT, FRONTEND_PORT
    stack.up(PLAIN_HTTP)
    wait_for("the release's /health", stack.healthy, HEALTHY_TIMEOUT)
    env = _backend_env(stack)
    assert env["CORS_ORIGINS"] == FRONTEND_URL
    assert (env["COOKIE_SECURE"], env["COOKIE_SAMESITE"]) == ("false", "lax")
    password = admin_password(stack)
    deployed = time.monotonic()

    with browser.browser_session(prefix="http-default-") as session:
        page = session.page
        ui.open_login(page, FRONTEND_URL)
        artifacts = [session.screenshot("1-login")]

        # A wrong password is refused in the form, with the release's message, and leaves no session.
        with pytest.raises(ui.LoginRefused, match="Invalid username or password"):
            ui.submit_login(page, WRONG_PASSWORD)
        assert not [c for c in session.context.cookies() if c["name"] == ui.SESSION_COOKIE]
        page.reload()  # a fresh form, as a user retrying would see it

        # The first-start admin: no forced password change, no setup wizard (`ensure_admin_exists`).
        ui.login(page, FRONTEND_URL, password)
        main = page.locator("main")
        for text in ("System overview and statistics", "Total Events", "Active Cameras", "Getting Started"):
            assert main.get_by_text(text, exact=True).first.is_visible(), f"the dashboard does not show {text!r}"
        artifacts.append(session.screenshot("2-dashboard"))

        # The session cookie as the browser keeps it: set by the backend on localhost (cookies ignore the
        # port, so the frontend's pages and the API share it), HttpOnly, and over plain HTTP not Secure,
        # SameSite as configured (the release's own defaults, Secure + None, would be dropped here).
        cookies = {c["name"]: c for c in session.context.cookies()}
        assert ui.SESSION_COOKIE in cookies, f"no session cookie; the browser holds {sorted(cookies)}"
        cookie = cookies[ui.SESSION_COOKIE]
        assert cookie["domain"] == "localhost"
        assert cookie["httpOnly"] is True
        assert cookie["secure"] is False
        assert cookie["sameSite"] == "Lax"
        assert ui.SESSION_COOKIE not in page.evaluate("document.cookie")  # HttpOnly: no script sees it

        # The dashboard loaded afresh with the session: every call to the backend answers; only the live
        # feeds that the release opens on the frontend's own origin fail (LIVE_FEEDS).
        _, dashboard = session.observe(lambda: ui.open_dashboard(page, FRONTEND_URL))
        unexpected, dashboard_feeds = _unexpected(dashboard)
        assert not unexpected, "the dashboard reported:\n" + "\n".join(unexpected)

        # To the cameras as a user goes (the sidebar): the dashboard's feeds may still retry meanwhile.
        landed, via_link = session.observe(lambda: ui.open_cameras(page))
        assert landed == "empty"
        artifacts.append(session.screenshot("3-cameras"))
        unexpected, _ = _unexpected(via_link)
        assert not unexpected, "opening the cameras page reported:\n" + "\n".join(unexpected)

        # The cameras page on its own (a reload keeps the session): nothing at all may fail.
        landed, cameras = session.observe(lambda: ui.open_cameras(page, FRONTEND_URL))
        assert landed == "empty"
        problems = cameras.problems()
        assert not problems, "the cameras page reported:\n" + "\n".join(problems)

    for path in artifacts:
        assert path.stat().st_size > 0
    record_result(
        f"RESULT browser over http: login form (wrong password refused), dashboard, cameras page without "
        f"errors; live feeds failing through the frontend's /api/v1 rewrite: {dashboard_feeds or 'none'}; "
        f"deploy {deployed - started:.0f}s, browser {time.monotonic() - deployed:.0f}s; screenshots in "
        f"{_shown(artifacts[0].parent)}"
    )


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


@pytest.fixture
def tls_site(tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    """An HTTPS page on 127.0.0.1 for `argusai.lan`; (its URL, PEM of its CA, PEM of an unrelated CA)."""
    made = Certificates.for_names(TLS_NAME, ca_name="argusai browser-kit test CA")
    (tmp_path / "cert.pem").write_bytes(made.server_cert)
    (tmp_path / "key.pem").write_bytes(made.server_key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    port = free_port()
    server = http.server.ThreadingHTTPServer((LOOPBACK, port), _Hello)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://{TLS_NAME}:{port}/", made.ca, made.other_ca
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_browser_trusts_only_the_given_ca(tls_site: tuple[str, str, str], chromium: None) -> None:
    """The kit's trust: the page loads with its CA trusted, and fails as for a user with another or none."""
    url, ca, other = tls_site
    with browser.browser_session(trust_ca=ca, hosts=[TLS_NAME], prefix="kit-tls-") as session:
        response = session.page.goto(url)
        assert response is not None
        assert response.status == 200
        assert session.page.locator("h1").inner_text() == "served over TLS"
        assert session.observed.failed(url) == []
        session.screenshot("trusted")
    for trust in (other, None):
        with browser.browser_session(trust_ca=trust, hosts=[TLS_NAME]) as session:
            with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
                session.page.goto(url)
            assert [r.reason for r in session.observed.failed(url)] == ["net::ERR_CERT_AUTHORITY_INVALID"]


def _failures(observed: browser.Observed) -> list[str]:
    """What the pages reported, but requests the page itself cancelled (`net::ERR_ABORTED`).

    Leaving a page aborts its open event stream: chromium records that as a failed request, though
    nothing failed.
    """
    return [line for line in observed.problems() if not line.endswith(": net::ERR_ABORTED")]


def test_https_stack_in_the_browser(stack: Stack, engine: docker.DockerClient, chromium: None) -> None:
    """HTTPS through the proxy, the stack's own CA trusted: the real UI without a single error.

    The frontend built for one origin, behind the proxy: the login through the form, a `Secure`,
    `HttpOnly` session cookie, the dashboard with its live feeds (which fail over plain HTTP with the
    published image) and the cameras page, all without a console error or a failed request; plain HTTP
    redirects to the HTTPS origin in the browser too.
    """
    require_release_image(engine)
    _require(
        _image_present(engine, ARGUSAI_FRONTEND_SAME_ORIGIN.tag),
        f"{ARGUSAI_FRONTEND_SAME_ORIGIN.tag} is missing (`python -m testkit.images.build --only "
        "argusai-frontend-same-origin` builds it)",
    )
    started = time.monotonic()
    https_port, http_port = free_port(), free_port()
    config = {
        "backendImage": ARGUSAI_BACKEND.tag,
        "schemaGate": True,
        "frontendImage": ARGUSAI_FRONTEND_SAME_ORIGIN.tag,
        "tlsHostnames": [TLS_NAME],
        "httpsPort": https_port,
        "httpPort": http_port,
        "proxyImage": CADDY.tag,
    }
    stack.up(config)
    ca = ca_of(stack, config)
    origin = f"https://{TLS_NAME}:{https_port}"
    password = admin_password(stack)
    deployed = time.monotonic()

    with browser.browser_session(trust_ca=ca, hosts=[TLS_NAME], prefix="https-stack-ca-") as session:
        page = session.page
        ui.open_login(page, origin)
        artifacts = [session.screenshot("1-login")]
        ui.login(page, origin, password)
        main = page.locator("main")
        for text in ("System overview and statistics", "Total Events", "Active Cameras"):
            assert main.get_by_text(text, exact=True).first.is_visible(), f"the dashboard does not show {text!r}"
        artifacts.append(session.screenshot("2-dashboard"))

        cookies = {c["name"]: c for c in session.context.cookies()}
        assert ui.SESSION_COOKIE in cookies, f"no session cookie; the browser holds {sorted(cookies)}"
        cookie = cookies[ui.SESSION_COOKIE]
        assert cookie["domain"] == TLS_NAME
        assert cookie["secure"] is True
        assert cookie["httpOnly"] is True
        assert ui.SESSION_COOKIE not in page.evaluate("document.cookie")

        # One origin: the dashboard's live feeds reach the backend through the proxy (the event stream
        # answers 200), and nothing fails.
        with page.expect_response(lambda response: response.url.endswith(LIVE_FEEDS[0])) as stream:
            _, dashboard = session.observe(lambda: ui.open_dashboard(page, origin))
        assert stream.value.status == 200
        assert not _failures(dashboard), "the dashboard reported:\n" + "\n".join(_failures(dashboard))
        landed, cameras = session.observe(lambda: ui.open_cameras(page))
        assert landed == "empty"
        artifacts.append(session.screenshot("3-cameras"))
        assert not _failures(cameras), "the cameras page reported:\n" + "\n".join(_failures(cameras))

        # Typed without https://: the proxy's plain HTTP port sends the browser to the HTTPS origin.
        page.goto(f"http://{TLS_NAME}:{http_port}/cameras")
        assert page.url == f"{origin}/cameras"

    for path in artifacts:
        assert path.stat().st_size > 0
    record_result(
        f"RESULT browser over https: stack CA trusted, login form, Secure HttpOnly cookie, dashboard with live "
        f"feeds and cameras page without errors, http redirected; deploy {deployed - started:.0f}s, browser "
        f"{time.monotonic() - deployed:.0f}s; screenshots in {_shown(artifacts[0].parent)}"
    )

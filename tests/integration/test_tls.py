"""HTTPS through the proxy on the engine: each certificate source, redirects, refusals, renewal, switching.

The proxy is the Caddy test image (Debian's caddy behind the official image's contract). The stand-in
backend and frontend keep these tests fast; the real release behind the proxy is in test_browser.py (in a
browser) and in `test_real_release_behind_the_proxy` here.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from typing import Any

import pytest
from cryptography import x509

from components.settings import ConfigError
from testkit import https
from testkit.acme import start_pebble
from testkit.images.recipes import ARGUSAI_BACKEND, ARGUSAI_FRONTEND_SAME_ORIGIN, CADDY
from testkit.net import free_port
from testkit.pki import Certificates

from .conftest import FRONTEND_IMAGE, Stack, record_result, require_release_image, wait_for
from .test_argusai_deploy import admin_password

pytestmark = [pytest.mark.integration, pytest.mark.tls]

HOSTNAME = "argusai.lan"
PUBLIC_LIKE = "argusai.test"  # what a private ACME server (Pebble) signs
ISSUE_TIMEOUT_SECONDS = 120
# tlsCertificateMinutes 2: Caddy renews at two thirds of the lifetime, checking every 20 s.
RENEW_TIMEOUT_SECONDS = 180
# Pebble's certificates in the ACME test: the proxy renews at two thirds (160 s), checking every minute, so
# well before they expire.
ACME_VALIDITY_SECONDS = 240
ACME_RENEW_TIMEOUT_SECONDS = 300
SECURITY_HEADERS = {
    "x-frame-options": "SAMEORIGIN",
    "x-content-type-options": "nosniff",
    "referrer-policy": "strict-origin-when-cross-origin",
}


def https_config(stack: Stack, **overrides: Any) -> dict[str, Any]:
    """HTTPS on for HOSTNAME on two free ports, the Caddy test image as the proxy."""
    ports = {"httpsPort": free_port(), "httpPort": free_port()}
    return {"tlsHostnames": [HOSTNAME], **ports, "proxyImage": CADDY.tag, **overrides}


def get(port: int, path: str, ca: str, hostname: str = HOSTNAME, **kwargs: Any) -> https.Response:
    """GET over HTTPS trusting only `ca`."""
    return https.request(hostname, port, path, https.trusting(ca), **kwargs)


def ca_of(stack: Stack, config: dict[str, Any]) -> str:
    """The stack CA's certificate, as exported.

    The harness runs the program before the applier creates anything, so a value only the provider knows
    (what the CA printer printed) is in the outputs of the next run over the state, as `pulumi stack
    output` shows it after the `up`.
    """
    pem = stack.program(config).outputs["tlsCaCertificate"].value
    assert pem.startswith("-----BEGIN CERTIFICATE-----"), f"tlsCaCertificate is not a PEM certificate: {pem!r}"
    return pem


def published(stack: Stack, role: str) -> dict[str, Any]:
    """The host ports a container of the stack publishes."""
    return {k: v for k, v in (stack.container(role).attrs["HostConfig"]["PortBindings"] or {}).items() if v}


def test_stack_ca_served_verified_and_kept(stack: Stack) -> None:
    """The stack's own CA: verified, HTTP redirected, another CA refused, kept through `destroy`.

    A client trusts only the exported CA. The CA outlives a `destroy` of a protected stack: the proxy
    volume is kept with the data.
    """
    config = https_config(stack, frontendImage=FRONTEND_IMAGE, protectData=True)
    stack.up(config)
    ca = ca_of(stack, config)
    port, http_port = config["httpsPort"], config["httpPort"]

    health = get(port, "/health", ca)
    assert health.status == 200, health
    page = get(port, "/", ca)
    assert page.status == 200, page
    assert b"html" in page.body.lower()  # the frontend answered the rest
    for name, value in SECURITY_HEADERS.items():
        assert page.headers.get(name) == value, (name, page.headers)
    assert "strict-transport-security" not in page.headers  # devices trust the stack CA only once installed
    assert "server" not in page.headers

    redirect = https.plain_request(HOSTNAME, http_port, "/cameras?x=1")
    assert redirect.status == 308
    assert redirect.headers["location"] == f"https://{HOSTNAME}:{port}/cameras?x=1"

    other = Certificates.for_names(HOSTNAME).other_ca
    with pytest.raises(ssl.SSLCertVerificationError):
        get(port, "/health", other)

    assert published(stack, "backend") == {}
    assert published(stack, "frontend") == {}
    assert sorted(published(stack, "proxy")) == sorted([f"{port}/tcp", f"{http_port}/tcp"])
    envs = stack.container("backend").attrs["Config"]["Env"]
    assert "COOKIE_SECURE=true" in envs
    assert f"CORS_ORIGINS=https://{HOSTNAME}:{port}" in envs

    # `pulumi state unprotect --all` and `pulumi destroy`: the retained volumes stay; the next `up` adopts
    # the proxy volume and serves certificates from the same CA.
    for record in stack.state.resources.values():
        record.protect = False
    stack.down()
    assert stack.client.volumes.get(stack.physical("proxy"))
    stack.up(config)
    assert ca_of(stack, config) == ca
    assert get(port, "/health", ca).status == 200
    record_result("RESULT tls stack CA: verified, redirected, other CA refused, same CA after destroy + up")


def test_stack_ca_renews_with_no_up(stack: Stack) -> None:
    """Certificates of two minutes: the proxy renews them by itself; clients trusting the CA go on."""
    config = https_config(stack, tlsCertificateMinutes=2)
    stack.up(config)
    ca, port = ca_of(stack, config), config["httpsPort"]
    first = https.served_certificate(HOSTNAME, port)
    lifetime = first.not_valid_after_utc - first.not_valid_before_utc
    assert lifetime.total_seconds() <= 2 * 60 + 60, lifetime  # Caddy backdates the start a little

    def renewed() -> x509.Certificate | None:
        served = https.served_certificate(HOSTNAME, port)
        return served if served.serial_number != first.serial_number else None

    started = time.monotonic()
    second = wait_for("a renewed certificate", renewed, RENEW_TIMEOUT_SECONDS, interval=2)
    assert second.not_valid_after_utc > first.not_valid_after_utc
    assert get(port, "/health", ca).status == 200
    record_result(
        f"RESULT tls renewal: a 2-minute certificate replaced after {time.monotonic() - started:.0f} s, no up"
    )


def test_operator_certificate_served_and_bad_ones_refused(stack: Stack) -> None:
    """The operator's own chain is served (with HSTS); bad inputs are refused before any change.

    A certificate for another name, and a key of another certificate: refused, and the proxy keeps serving
    the good one.
    """
    pki = Certificates.for_names(HOSTNAME, "192.168.7.7")
    chain = pki.server_cert.decode() + pki.ca
    secrets = {"tlsCertificate": chain, "tlsPrivateKey": pki.server_key.decode()}
    config = https_config(stack)
    stack.up(config, secrets)
    port = config["httpsPort"]
    served = https.served_certificate(HOSTNAME, port)
    assert served == x509.load_pem_x509_certificate(pki.server_cert)
    response = get(port, "/health", pki.ca)
    assert response.status == 200
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    assert stack.output("tlsSource") == "operator"

    other = Certificates.for_names("other.lan")
    bad = {"tlsCertificate": other.server_cert.decode() + other.ca, "tlsPrivateKey": other.server_key.decode()}
    with pytest.raises(ConfigError, match="argusai:tlsCertificate' does not cover argusai.lan") as err:
        stack.up(config, bad)
    assert other.server_key.decode().splitlines()[1] not in str(err.value)
    mismatched = {**secrets, "tlsPrivateKey": other.server_key.decode()}
    with pytest.raises(ConfigError, match="argusai:tlsPrivateKey"):
        stack.up(config, mismatched)
    assert https.served_certificate(HOSTNAME, port) == served
    record_result("RESULT tls operator certificate: served with HSTS; other name and other key refused")


def test_acme_from_pebble_and_switching_both_ways(stack: Stack) -> None:
    """ACME from Pebble on the stack's network; HTTPS on and off with one `up` each, losing nothing.

    The stack starts on plain HTTP with data; the data is there after each switch.
    """
    stack.up()
    stack.post_notes(["before https"])
    config = https_config(stack, tlsHostnames=[PUBLIC_LIKE], acmeEmail="ops@argusai.test")
    pebble = start_pebble(
        stack.client, stack.physical("app"), stack.name, config["httpPort"], validity_seconds=ACME_VALIDITY_SECONDS
    )
    config |= {"acmeDirectory": pebble.directory, "acmeCaCert": pebble.certificates.ca}
    stack.up(config)
    port = config["httpsPort"]
    root = pebble.issuing_root()

    def issued() -> https.Response | None:
        try:
            return get(port, "/events", root, hostname=PUBLIC_LIKE)
        except (ssl.SSLError, OSError):
            return None  # still the placeholder, or not yet issued

    started = time.monotonic()
    response = wait_for("a certificate from Pebble", issued, ISSUE_TIMEOUT_SECONDS, interval=1)
    assert response.status == 200
    # The stand-in notes each of its starts; what was written before the switch is all there.
    assert "before https" in json.loads(response.body)["notes"]
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    assert published(stack, "backend") == {}
    issued_after = time.monotonic() - started
    first = https.served_certificate(PUBLIC_LIKE, port)

    # Renewed by the proxy before it expires, with no `up`: a new certificate from the same ACME server.
    def renewed() -> x509.Certificate | None:
        served = https.served_certificate(PUBLIC_LIKE, port)
        return served if served.serial_number != first.serial_number else None

    second = wait_for("a renewed ACME certificate", renewed, ACME_RENEW_TIMEOUT_SECONDS, interval=2)
    renewed_after = time.monotonic() - started
    assert second.not_valid_after_utc > first.not_valid_after_utc
    assert get(port, "/health", root, hostname=PUBLIC_LIKE).status == 200
    record_result(
        f"RESULT tls acme: issued by Pebble and served {issued_after:.1f} s after up; a {ACME_VALIDITY_SECONDS} s "
        f"certificate renewed {renewed_after:.0f} s after up, no up"
    )

    stack.up()  # HTTPS off again: the same proxy serves plain HTTP; the backend still publishes nothing
    assert "before https" in stack.notes()
    assert published(stack, "backend") == {}
    # The app; beside it the API's old port (no frontend on this stack: no old frontend port to redirect).
    assert sorted(published(stack, "proxy")) == [f"{stack.http_port}/tcp"]
    assert sorted(published(stack, "old-ports")) == [f"{stack.backend_port}/tcp"]


def test_proxy_holds_requests_while_the_backend_is_replaced(stack: Stack) -> None:
    """Polling through the proxy while the backend is deleted and created again: no request fails."""
    config = https_config(stack)
    stack.up(config)
    ca, port = ca_of(stack, config), config["httpsPort"]
    assert stack.deployment is not None
    failures, longest, done = [], 0.0, False

    def poll() -> None:
        nonlocal longest
        while not done:
            started = time.monotonic()
            try:
                status = get(port, "/health", ca).status
            except OSError as exc:
                status = repr(exc)
            longest = max(longest, time.monotonic() - started)
            if status != 200:
                failures.append(status)
            time.sleep(0.1)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        stack.applier.replace(stack.state, stack.deployment, "backend")
        time.sleep(1)
    finally:
        done = True
        poller.join()
    assert failures == []
    assert longest > 1  # the replacement really was waited through
    record_result(f"RESULT tls hold: backend replaced behind the proxy, 0 failed requests, longest {longest:.1f} s")


def test_real_release_behind_the_proxy(stack: Stack) -> None:
    """The real backend and the real same-origin frontend behind the proxy.

    The login page over HTTPS; the API's login sets a Secure, HttpOnly cookie; the WebSocket endpoint
    upgrades through the proxy.
    """
    require_release_image(stack.client)
    config = https_config(
        stack, backendImage=ARGUSAI_BACKEND.tag, frontendImage=ARGUSAI_FRONTEND_SAME_ORIGIN.tag, schemaGate=True
    )
    stack.up(config)
    ca, port = ca_of(stack, config), config["httpsPort"]
    login_page = get(port, "/login", ca)
    assert login_page.status == 200
    assert b"<html" in login_page.body.lower()
    body = json.dumps({"username": "admin", "password": admin_password(stack)}).encode()
    login = get(port, "/api/v1/auth/login", ca, method="POST", body=body, headers={"Content-Type": "application/json"})
    assert login.status == 200, login
    cookie = login.headers["set-cookie"].lower()
    assert "secure" in cookie
    assert "httponly" in cookie
    upgrade = get(
        port,
        "/ws",
        ca,
        headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
    )  # fmt: skip
    assert upgrade.status == 101, upgrade
    record_result("RESULT tls real release: login page, Secure HttpOnly cookie, WebSocket upgrade through the proxy")

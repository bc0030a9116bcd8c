"""An HTTPS client for the tests and benchmarks: `https://<hostname>:<port>` resolved to loopback.

The stack's names (`argusai.lan`, ...) resolve nowhere on a test machine; this client connects to
127.0.0.1 and speaks TLS to the name, so certificate checks (chain, name) are exactly a browser's for
that URL. It trusts only the CA it is given (no system store), unless told not to verify at all (to read
what a server presents).
"""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass, field

from cryptography import x509

from testkit.net import LOOPBACK

TIMEOUT_SECONDS = 30
SWITCHING_PROTOCOLS = 101


@dataclass(frozen=True)
class Response:
    """One HTTP response."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    """Header names lower case."""
    body: bytes = b""


def trusting(ca_pem: str) -> ssl.SSLContext:
    """A client context that trusts only `ca_pem` and checks the host name."""
    context = ssl.create_default_context(cadata=ca_pem)
    context.check_hostname = True
    return context


class _LoopbackHTTPS(http.client.HTTPSConnection):
    """An HTTPS connection to the name in the URL, made to 127.0.0.1."""

    def connect(self) -> None:
        sock = socket.create_connection((LOOPBACK, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def request(
    hostname: str,
    port: int,
    path: str,
    context: ssl.SSLContext,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> Response:
    """One request to `https://<hostname>:<port><path>` (no redirects followed)."""
    connection = _LoopbackHTTPS(hostname, port, context=context, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        # A switch of protocols (a WebSocket) has no body to read: the connection is the other protocol's now.
        body = b"" if response.status == SWITCHING_PROTOCOLS else response.read()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, body)
    finally:
        connection.close()


def plain_request(hostname: str, port: int, path: str, timeout: float = TIMEOUT_SECONDS) -> Response:
    """One plain-HTTP request to `http://<hostname>:<port><path>` made to 127.0.0.1 (no redirects followed)."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": f"{hostname}:{port}"})
        response = connection.getresponse()
        return Response(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def served_certificate(hostname: str, port: int, timeout: float = TIMEOUT_SECONDS) -> x509.Certificate:
    """The certificate the server presents for `hostname`, unverified (to read its serial, issuer, dates)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((LOOPBACK, port), timeout) as sock,
        context.wrap_socket(sock, server_hostname=hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)

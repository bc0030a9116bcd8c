"""The proxy's configuration (a Caddyfile), for each way in. Pure: text from settings, nothing declared.

One site serves the app from one origin: `/api/*`, `/ws`, `/ws/*` and `/health` go to the backend, the rest
to the frontend (everything to the backend when there is no frontend), with the release nginx's security
headers, its 50 MB body limit and no `Server` header. While an upstream is replaced, a request is held and
retried until it answers (HOLD_SECONDS), instead of failing.

- HTTPS (`https_config`): that site on every hostname with the certificate source's `tls`; plain HTTP
  redirects every name to its HTTPS origin (ACME HTTP-01 challenges are answered first).
- Plain HTTP (`http_config`): that site on `httpPort` for any host name (users open the server by its
  address or whatever name their network gives it). Beside it (`old_ports_config`, a container of its own):
  the old frontend port redirects there, keeping bookmarks; the old backend port passes everything to the
  backend (API clients keep working).
"""

from __future__ import annotations

from collections.abc import Sequence

from components.https import certs
from components.https.sources import HSTS_MAX_AGE_SECONDS, CertificateSource
from components.settings import HttpsSettings

# How long a request waits for an upstream that does not answer (a backend being replaced: its successor
# imports the release for some 10 to 20 s); retried every HOLD_RETRY_SECONDS.
HOLD_SECONDS = 120
HOLD_RETRY_SECONDS = 0.25
#: The release's nginx limit (client_max_body_size 50M): uploads of that size pass.
MAX_BODY = "50MB"
#: The release's security headers (nginx/nginx.conf), and no Server header.
SECURITY_HEADERS = (
    ("X-Frame-Options", '"SAMEORIGIN"'),
    ("X-Content-Type-Options", '"nosniff"'),
    ("X-XSS-Protection", '"1; mode=block"'),
    ("Referrer-Policy", '"strict-origin-when-cross-origin"'),
)
#: What goes to the backend (nginx: /api/ and /ws); /health too, for monitoring through the origin.
BACKEND_PATHS = ("/api/*", "/ws", "/ws/*", "/health")
HTTP_DEFAULT_PORT = 80
#: Caddy's global options for plain HTTP: no certificates, HTTP/1 only.
PLAIN_HTTP_OPTIONS = ("auto_https off", "servers {\n\t\tprotocols h1\n\t}")


def _reverse_proxy(upstream: str) -> str:
    return (
        f"reverse_proxy {upstream} {{\n"
        f"\t\t\tlb_try_duration {HOLD_SECONDS}s\n"
        f"\t\t\tlb_try_interval {round(HOLD_RETRY_SECONDS * 1000)}ms\n"
        "\t\t}"
    )


def _headers(extra: Sequence[tuple[str, str]] = ()) -> str:
    headers = [*SECURITY_HEADERS, ("-Server", ""), *extra]
    return "header {\n" + "".join(f"\t\t{name} {value}".rstrip() + "\n" for name, value in headers) + "\t}"


def _app_site(backend: str, frontend: str | None, extra_headers: Sequence[tuple[str, str]] = ()) -> list[str]:
    """The app's site body: headers, the body limit, the routes."""
    site = [_headers(extra_headers), f"request_body {{\n\t\tmax_size {MAX_BODY}\n\t}}"]
    if frontend is None:
        site.append(f"handle {{\n\t\t{_reverse_proxy(backend)}\n\t}}")
    else:
        site.append(f"@backend path {' '.join(BACKEND_PATHS)}")
        site.append(f"handle @backend {{\n\t\t{_reverse_proxy(backend)}\n\t}}")
        site.append(f"handle {{\n\t\t{_reverse_proxy(frontend)}\n\t}}")
    return site


def _block(address: str, lines: Sequence[str]) -> str:
    return f"{address} {{\n" + "".join(f"\t{line}\n" for line in lines) + "}\n"


def _global(options: Sequence[str]) -> str:
    return "{\n" + "".join(f"\t{line}\n" for line in options) + "}\n"


def https_config(https: HttpsSettings, source: CertificateSource, backend: str, frontend: str | None) -> str:
    """With HTTPS: ports, the source's options, one site for every hostname, and plain HTTP's redirects."""
    options = [
        # Caddy listens on the host's port numbers, so its redirects and URLs name the ports users see.
        f"http_port {https.http_port}",
        f"https_port {https.https_port}",
        # Caddy's own redirect drops a port other than 443 (it takes https_port for the default); the sites
        # below redirect to the origin users browse to instead.
        "auto_https disable_redirects",
        # Only TCP is published: no HTTP/3 advertised that no client could reach.
        "servers {\n\t\tprotocols h1 h2\n\t}",
        *source.global_options(),
    ]
    hsts = [("Strict-Transport-Security", f'"max-age={HSTS_MAX_AGE_SECONDS}"')] if source.hsts else []
    site = [tls] if (tls := source.site_tls()) else []
    site.extend(_app_site(backend, frontend, hsts))
    addresses = ", ".join(certs.url_host(name) for name in https.hostnames)
    # Plain HTTP: every name redirects to its HTTPS origin (ACME HTTP-01 challenges are answered before).
    redirects = "".join(
        "\n" + _block(f"http://{certs.url_host(name)}", [f"redir {origin}{{uri}} 308"])
        for name, origin in zip(https.hostnames, https.origins, strict=True)
    )
    return f"{_global(options)}\n{_block(addresses, site)}{redirects}"


def http_config(http_port: int, backend: str, frontend: str | None) -> str:
    """Without HTTPS: the app on `http_port` for any host name."""
    return _global(PLAIN_HTTP_OPTIONS) + "\n" + _block(f"http://:{http_port}", _app_site(backend, frontend))


def old_ports_config(http_port: int, backend_port: int, frontend_port: int | None, backend: str) -> str:
    """Without HTTPS, the ports the backend and the frontend used to publish.

    The old frontend port redirects to the app (the same host name, `http_port`); the old backend port is the
    backend's.
    """
    origin_port = "" if http_port == HTTP_DEFAULT_PORT else f":{http_port}"
    sites = []
    if frontend_port is not None:
        sites.append(_block(f"http://:{frontend_port}", [f"redir http://{{host}}{origin_port}{{uri}} 308"]))
    sites.append(_block(f"http://:{backend_port}", [_headers(), f"handle {{\n\t\t{_reverse_proxy(backend)}\n\t}}"]))
    return _global(PLAIN_HTTP_OPTIONS) + "".join(f"\n{site}" for site in sites)

"""The HTTPS reverse proxy (Caddy): one origin for the backend and the frontend.

Creates:
- `<name>-data`: named volume at /data (certificates, ACME account, the stack's own CA); protected and
  retained with `protectData`, like the data volumes, so the stack CA outlives a `destroy`.
- `<name>-image`: the proxy image (Caddy 2), kept locally.
- `<name>-container`: Caddy with a Caddyfile written here and uploaded to /etc/caddy/Caddyfile, on the app
  network (aliases: the stack's host names, so containers reach the origin by its name; not its addresses),
  publishing HTTPS and plain HTTP on the chosen host address; healthy when its admin endpoint answers.
- `<name>-ca-container` (when the certificate source is a CA of the stack's own): a one-shot container in
  the proxy's image that prints the CA's root certificate from the proxy volume and exits; pulumi-docker
  keeps what it printed (`attach` + `logs`: `container_logs`), which is `ca_certificate`. It runs again
  whenever the proxy is replaced.

Routes: `/api/`, `/ws` and `/health` to the backend, the rest to the frontend (everything to the backend when
there is no frontend). Plain HTTP redirects to HTTPS (Caddy's own redirect, which also answers ACME HTTP-01
challenges). While an upstream is replaced, a request is held and retried until it answers (HOLD_SECONDS),
instead of failing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.docker_common import (
    data_volume,
    local_image,
    service_container,
    shell_poll,
    waiting_healthcheck,
)
from components.https import certs
from components.https.sources import HSTS_MAX_AGE_SECONDS, CertificateSource
from components.naming import Naming
from components.settings import HttpsSettings

#: Where the proxy keeps what it makes (certificates, the stack CA): the image's data directory.
DATA_PATH = "/data"
CADDYFILE_PATH = "/etc/caddy/Caddyfile"
ADMIN_URL = "http://localhost:2019/config/"
STOP_GRACE_SECONDS = 10
WAIT_TIMEOUT_SECONDS = 120
# How long a request waits for an upstream that does not answer (a backend being replaced: its successor
# imports the release for about 20 s); retried every HOLD_RETRY_SECONDS.
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
# How long the CA printer waits for the proxy to have written the root (it does so at its first start).
CA_WAIT_SECONDS = 60
CA_POLL_SECONDS = 0.5
_FIRST_PROBE_WAIT_SECONDS = 30
_STEADY_PROBE_SECONDS = 30
PROBE = f"wget -q -O /dev/null {ADMIN_URL}"
READY_MARKER = "/tmp/argusai-healthy.reported"  # noqa: S108 - inside the proxy's container
HEALTHCHECK = waiting_healthcheck(
    shell_poll(PROBE, _FIRST_PROBE_WAIT_SECONDS),
    marker=READY_MARKER,
    check=PROBE,
    steady_seconds=_STEADY_PROBE_SECONDS,
    timeout=_FIRST_PROBE_WAIT_SECONDS + _STEADY_PROBE_SECONDS,
    retries=3,
    start_period=30,
)


def _reverse_proxy(upstream: str) -> str:
    return (
        f"reverse_proxy {upstream} {{\n"
        f"\t\t\tlb_try_duration {HOLD_SECONDS}s\n"
        f"\t\t\tlb_try_interval {round(HOLD_RETRY_SECONDS * 1000)}ms\n"
        "\t\t}"
    )


def caddyfile(https: HttpsSettings, source: CertificateSource, backend: str, frontend: str | None) -> str:
    """The proxy's whole configuration: ports, the source's options, one site for every hostname."""
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
    headers = [*SECURITY_HEADERS, ("-Server", "")]
    if source.hsts:
        headers.append(("Strict-Transport-Security", f'"max-age={HSTS_MAX_AGE_SECONDS}"'))
    site = []
    if tls := source.site_tls():
        site.append(tls)
    site.append("header {\n" + "".join(f"\t\t{name} {value}".rstrip() + "\n" for name, value in headers) + "\t}")
    site.append(f"request_body {{\n\t\tmax_size {MAX_BODY}\n\t}}")
    if frontend is None:
        site.append(f"handle {{\n\t\t{_reverse_proxy(backend)}\n\t}}")
    else:
        site.append(f"@backend path {' '.join(BACKEND_PATHS)}")
        site.append(f"handle @backend {{\n\t\t{_reverse_proxy(backend)}\n\t}}")
        site.append(f"handle {{\n\t\t{_reverse_proxy(frontend)}\n\t}}")
    addresses = ", ".join(certs.url_host(name) for name in https.hostnames)
    body = "".join(f"\t{line}\n" for line in site)
    # Plain HTTP: every name redirects to its HTTPS origin (ACME HTTP-01 challenges are answered before).
    redirects = "".join(
        f"\nhttp://{certs.url_host(name)} {{\n\tredir {origin}{{uri}} 308\n}}\n"
        for name, origin in zip(https.hostnames, https.origins, strict=True)
    )
    global_block = "{\n" + "".join(f"\t{line}\n" for line in options) + "}\n"
    return f"{global_block}\n{addresses} {{\n{body}}}\n{redirects}"


@dataclass(frozen=True)
class ProxyArgs:
    """Inputs of Proxy."""

    naming: Naming
    """Physical names and labels."""
    https: HttpsSettings
    """Names, ports, image and certificate settings."""
    source: CertificateSource
    """Where the certificate comes from (decided in settings)."""
    backend: str
    """The backend's address on the app network (`host:port`)."""
    frontend: str | None
    """The frontend's address on the app network, or None when the stack has no frontend."""
    app_network: pulumi.Input[str]
    """The app network."""
    bind_address: str
    """Host address the ports are published on."""
    protect_data: bool
    """Protect and retain the proxy volume (false: a disposable stack)."""
    follow_registry: bool
    """Resolve the image tag to the registry's current digest."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """Resources that must be ready first (backend and frontend)."""


class Proxy(pulumi.ComponentResource):
    """The proxy container and its volume."""

    container: docker.Container
    image: docker.RemoteImage
    volume: docker.Volume
    ca_certificate: pulumi.Output[str] | None
    """The stack CA's root certificate (PEM) when the source is a CA of the stack's own, else None."""

    def __init__(self, name: str, args: ProxyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare volume, image, container and, for a CA of the stack's own, its printer."""
        super().__init__("argusai:proxy:Proxy", name, None, opts)
        https = args.https
        self.volume = data_volume(
            f"{name}-data",
            args.naming.physical_name("proxy"),
            args.naming.labels("proxy"),
            parent=self,
            keep=args.protect_data,
        )
        self.image = local_image(f"{name}-image", https.proxy_image, follow_registry=args.follow_registry, parent=self)
        config = caddyfile(https, args.source, args.backend, args.frontend)
        self.container = service_container(
            f"{name}-container",
            naming=args.naming,
            role="proxy",
            grace_seconds=STOP_GRACE_SECONDS,
            parent=self,
            depends_on=args.depends_on,
            image=self.image.image_id,
            volumes=[docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=DATA_PATH)],
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=args.app_network,
                    aliases=["proxy", *(name for name in https.hostnames if certs.hostname_kind(name) != "ip")],
                )
            ],
            ports=[
                docker.ContainerPortArgs(internal=port, external=port, ip=args.bind_address)
                for port in sorted((https.http_port, https.https_port))
            ],
            uploads=[docker.ContainerUploadArgs(file=CADDYFILE_PATH, content=config), *args.source.uploads()],
            healthcheck=HEALTHCHECK.args(),
            wait=True,
            wait_timeout=WAIT_TIMEOUT_SECONDS,
        )
        self.ca_certificate = None
        if args.source.ca_root is not None:
            self.ca_certificate = self._ca_printer(name, args, f"{DATA_PATH}/{args.source.ca_root}").container_logs
        self.register_outputs({"container": self.container.name, "volume": self.volume.name})

    def _ca_printer(self, name: str, args: ProxyArgs, root: str) -> docker.Container:
        """Print the CA's root certificate once the proxy has made it; the provider keeps the output."""
        polls = round(CA_WAIT_SECONDS / CA_POLL_SECONDS)
        script = (
            f'n=0; until [ -s {root} ]; do n=$((n + 1)); [ "$n" -gt {polls} ] && exit 1; '
            f"sleep {CA_POLL_SECONDS}; done; cat {root}"
        )
        return service_container(
            f"{name}-ca-container",
            naming=args.naming,
            role="proxy-ca",
            grace_seconds=0,
            parent=self,
            depends_on=[self.container],
            restart="no",
            image=self.image.image_id,
            command=["sh", "-c", script],
            # Runs again whenever the proxy is replaced (a new image could have a new data layout).
            envs=[self.container.id.apply(lambda cid: f"ARGUSAI_PROXY={cid}")],
            volumes=[
                docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=DATA_PATH, read_only=True)
            ],
            attach=True,
            logs=True,
            must_run=False,
        )

"""The reverse proxy (Caddy): the one origin of the backend and the frontend, in front in every mode.

Creates:
- `<name>-data`: named volume at /data (certificates, ACME account, the stack's own CA); protected and
  retained with `protectData`, like the data volumes, so the stack CA outlives a `destroy`.
- `<name>-image`: the proxy image (Caddy 2), kept locally.
- `<name>-container`: Caddy with the Caddyfile it is given, uploaded to /etc/caddy/Caddyfile, on the app
  network (with the aliases it is given: an HTTPS stack's host names, so containers reach the origin by its
  name), publishing its ports on the chosen host address; healthy when its admin endpoint answers.
- `<name>-ca-container` (when the certificate source is a CA of the stack's own): a one-shot container in
  the proxy's image that prints the CA's root certificate from the proxy volume and exits; pulumi-docker
  keeps what it printed (`attach` + `logs`: `container_logs`), which is `ca_certificate`. It runs again
  whenever the proxy is replaced.

What it serves is the way in's (`components/https/entry.py`, `caddyfile.py`); the proxy knows no route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.docker_common import (
    data_volume,
    local_image,
    published_ports,
    service_container,
    shell_poll,
    waiting_healthcheck,
)
from components.naming import Naming

#: Where the proxy keeps what it makes (certificates, the stack CA): the image's data directory.
DATA_PATH = "/data"
CADDYFILE_PATH = "/etc/caddy/Caddyfile"
ADMIN_URL = "http://localhost:2019/config/"
STOP_GRACE_SECONDS = 10
WAIT_TIMEOUT_SECONDS = 120
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


@dataclass(frozen=True)
class ProxyArgs:
    """Inputs of Proxy."""

    naming: Naming
    """Physical names and labels."""
    image: str
    """The proxy's image reference."""
    config: str
    """The whole Caddyfile."""
    ports: Sequence[int]
    """Host ports to publish, each on the same port in the container (Caddy listens on the numbers users see)."""
    app_network: pulumi.Input[str]
    """The app network."""
    bind_address: str
    """Host address the ports are published on."""
    protect_data: bool
    """Protect and retain the proxy volume (false: a disposable stack)."""
    follow_registry: bool
    """Resolve the image tag to the registry's current digest."""
    aliases: Sequence[str] = ("proxy",)
    """Its names on the app network."""
    uploads: Sequence[docker.ContainerUploadArgs] = field(default_factory=tuple)
    """Files uploaded besides the Caddyfile (certificates)."""
    ca_root: str | None = None
    """A stack CA's root certificate under DATA_PATH to print for `ca_certificate`, or None."""
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
        # The type keeps its first name: every URN under it stays what existing stacks hold.
        super().__init__("argusai:proxy:Proxy", name, None, opts)
        self.volume = data_volume(
            f"{name}-data",
            args.naming.physical_name("proxy"),
            args.naming.labels("proxy"),
            parent=self,
            keep=args.protect_data,
            # Nothing of the proxy's before what it serves is up (a stack the secrets' checks stop is untouched).
            depends_on=args.depends_on,
        )
        self.image = local_image(
            f"{name}-image",
            args.image,
            follow_registry=args.follow_registry,
            parent=self,
            depends_on=args.depends_on,
        )
        self.container = service_container(
            f"{name}-container",
            naming=args.naming,
            role="proxy",
            grace_seconds=STOP_GRACE_SECONDS,
            parent=self,
            depends_on=args.depends_on,
            image=self.image.image_id,
            volumes=[docker.ContainerVolumeArgs(volume_name=self.volume.name, container_path=DATA_PATH)],
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.app_network, aliases=list(args.aliases))],
            ports=published_ports(args.ports, args.bind_address),
            uploads=[docker.ContainerUploadArgs(file=CADDYFILE_PATH, content=args.config), *args.uploads],
            healthcheck=HEALTHCHECK.args(),
            wait=True,
            wait_timeout=WAIT_TIMEOUT_SECONDS,
        )
        self.ca_certificate = None
        if args.ca_root is not None:
            self.ca_certificate = self._ca_printer(name, args, f"{DATA_PATH}/{args.ca_root}").container_logs
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

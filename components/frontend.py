"""The ArgusAI frontend (Next.js), when enabled, served behind the proxy from the app's one origin.

Creates:
- `<name>-image`: the frontend image, kept locally.
- `<name>-check`: a one-shot step (`components/step.py`, role `frontend-check`) in that image, run before the
  running frontend is replaced: it checks the image is what the origin rewrite expects (a Next.js
  standalone build whose browser code calls no loopback address but the release's baked API URL), and
  stops `pulumi up`, the old frontend still serving, with the image named and what to set when it is not.
- `<name>-container`: the frontend on the app network, BACKEND_URL pointing at the backend's alias, healthy
  when its page answers. It starts through `components/scripts/frontend_origin.sh`, which takes the API URL
  the release bakes into its published image (`http://localhost:8000`: the localhost of every device that
  runs the browser) out of the build, so the browser calls the API on the page's own origin, then runs the
  release's server. An image built for one origin is served as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_docker as docker

from components.docker_common import Healthcheck, local_image, service_container
from components.naming import Naming
from components.scripts import FRONTEND_ORIGIN
from components.step import Step, StepArgs

ALIAS = "frontend"
PORT = 3000
STOP_GRACE_SECONDS = 10
WAIT_TIMEOUT_SECONDS = 120
#: What ArgusAI's published image bakes into its browser code (its Dockerfile's default NEXT_PUBLIC_API_URL).
BAKED_API_URL = "http://localhost:8000"
CHECK_LOG_MOUNT = "/backups"
CHECK_LOG_DIR = f"{CHECK_LOG_MOUNT}/steps"
ROOT_USER = "0"
# The frontend image is Node.js: probe with node itself rather than assume curl or wget.
HEALTHCHECK = Healthcheck(
    test=(
        "CMD",
        "node",
        "-e",
        f"fetch('http://127.0.0.1:{PORT}/').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))",
    ),
    interval=5,
    timeout=5,
    retries=3,
    start_period=30,
)


@dataclass(frozen=True)
class FrontendArgs:
    """Inputs of Frontend."""

    naming: Naming
    """Physical names and labels."""
    image: str
    """Frontend image reference."""
    backend_url: str
    """URL the frontend's server side uses to reach the backend."""
    app_network: pulumi.Input[str]
    """The app network."""
    log_volume: pulumi.Input[str]
    """A volume for the check's log (the backups volume)."""
    follow_registry: bool
    """Resolve the image tag to the registry's current digest."""
    depends_on: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """Resources that must be ready first (what must pass before the backend serves: the frontend starts beside it)."""


class Frontend(pulumi.ComponentResource):
    """The frontend container, and the check of its image."""

    container: docker.Container
    image: docker.RemoteImage

    def __init__(self, name: str, args: FrontendArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare image, check and container."""
        super().__init__("argusai:frontend:Frontend", name, None, opts)
        naming = args.naming
        self.image = local_image(f"{name}-image", args.image, follow_registry=args.follow_registry, parent=self)
        origin_env = [f"FRONTEND_IMAGE={args.image}", f"BAKED_API_URL={BAKED_API_URL}"]
        check = Step(
            f"{name}-check",
            StepArgs(
                naming=naming,
                role="frontend-check",
                image=self.image.image_id,
                # Root: the log goes to the backups volume (root's); the image's files are only read.
                user=ROOT_USER,
                script=f"{FRONTEND_ORIGIN.shell} check",
                volumes=[docker.ContainerVolumeArgs(volume_name=args.log_volume, container_path=CHECK_LOG_MOUNT)],
                log_dir=CHECK_LOG_DIR,
                env=origin_env,
                files=FRONTEND_ORIGIN.uploads(),
                # Once the release's steps succeeded: a stack they stop is left as it was.
                depends_on=args.depends_on,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.container = service_container(
            f"{name}-container",
            naming=naming,
            role="frontend",
            grace_seconds=STOP_GRACE_SECONDS,
            parent=self,
            depends_on=[*args.depends_on, check.container],
            image=self.image.image_id,
            entrypoints=[*FRONTEND_ORIGIN.argv, "serve"],
            envs=[f"BACKEND_URL={args.backend_url}", *origin_env],
            uploads=FRONTEND_ORIGIN.uploads(),
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=args.app_network, aliases=[ALIAS])],
            healthcheck=HEALTHCHECK.args(),
            wait=True,
            wait_timeout=WAIT_TIMEOUT_SECONDS,
        )
        self.register_outputs({"container": self.container.name})

    @property
    def address(self) -> str:
        """Where the app network reaches the frontend (`host:port`)."""
        return f"{ALIAS}:{PORT}"

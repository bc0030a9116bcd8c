"""How a new ArgusAI backend image starts serving: after the release's steps, or beside them on a new stack.

Decided once per `pulumi up`, before anything is declared, from the Docker host the provider reaches (never
from the stack's own checkpoint, which the same `up` writes): does this stack's app network exist?

- It does (`AfterTheSteps`): a backend of this stack may be serving on it. A new backend container is
  created only once the database, the driver and the release's steps passed, so a failure leaves the
  running backend serving, and the replacement (delete before create) removes it only then.
- It does not (`BesideTheSteps`): a new stack, or one whose containers are all gone. Nothing serves, so
  nothing can be left serving. The backend container is created with the networks: it imports the
  release's code (most of its start) while PostgreSQL starts and the steps run, and serves once they
  passed. When one of them fails it never serves; its `wait` ends at the backend's timeout, and the next
  `up` (the network now there) takes the first way.

Both run the backend through `backend_serve.py` with the same inputs, so only the order of creation
differs, which is no input: the next `up` plans nothing. The release's steps write their run's token
(`RELEASE_STEPS_PASSED`) when they passed; the backend serves once it finds its own there. The token is
derived from the app network's id and the backend image id, so a file an earlier stack or image left on a
kept data volume never matches; the pre-upgrade backup gets it too, so it runs whenever the steps do.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence

import pulumi
import pulumi_docker as docker

from components import backend
from components.backend import Serving
from components.naming import Naming
from components.network import app_network_name
from components.scripts import BACKEND_SERVE, IN_CONTAINER

#: Where the release's steps write the token of a run that passed (on the data volume: both mount it).
RELEASE_STEPS_PASSED = f"{backend.DATA_PATH}/.release-steps-passed"
TOKEN_LENGTH = 32


class BackendStart(ABC):
    """What the release's steps and the backend share about its start; subclasses say when it is created."""

    #: What `pulumi up` reports as the way the backend starts.
    description: str

    def __init__(self, app_network: docker.Network) -> None:
        """The stack's app network (its id is in the token)."""
        self._network = app_network

    def token(self, image_id: pulumi.Input[str]) -> pulumi.Output[str]:
        """The token the release's steps write for the backend image `image_id` on this network."""
        return pulumi.Output.all(self._network.id, image_id).apply(
            lambda v: hashlib.sha256("\0".join(v).encode()).hexdigest()[:TOKEN_LENGTH]
        )

    def steps_env(self, image_id: pulumi.Input[str]) -> list[pulumi.Input[str]]:
        """What the release's steps (and the backup before them) get: where to write which token."""
        return [
            f"RELEASE_STEPS_PASSED={RELEASE_STEPS_PASSED}",
            pulumi.Output.concat("RELEASE_STEPS_TOKEN=", self.token(image_id)),
        ]

    def serving(
        self,
        steps_env: Sequence[pulumi.Input[str]],
        prerequisites: Sequence[pulumi.Resource],
        *,
        python_path: Sequence[str],
        driver_module: str | None,
    ) -> Serving:
        """The backend run by `backend_serve.py`, created as this start says.

        `steps_env`: what `steps_env` gave the release's steps (the backend waits for that token);
        `prerequisites`: the database, the driver and the release's steps; `python_path`: what the backend's
        Python needs besides `/app` (a driver the image lacks); `driver_module`: the driver it waits for.
        """
        env: list[pulumi.Input[str]] = [
            backend.python_path_env([*python_path, IN_CONTAINER]),
            f"SERVE_PORT={backend.PORT}",
            *steps_env,
        ]
        if driver_module:
            env.append(f"DRIVER_MODULE={driver_module}")
        return Serving(
            prerequisites=list(prerequisites),
            waits_for=self.waits_for(prerequisites),
            env=env,
            entrypoints=BACKEND_SERVE.argv,
            uploads=BACKEND_SERVE.uploads(),
        )

    @abstractmethod
    def waits_for(self, prerequisites: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
        """What the backend container's creation waits for."""


class AfterTheSteps(BackendStart):
    """A stack with its network: the backend is created once everything before it passed."""

    description = "after the release's steps (a backend may be serving)"

    def waits_for(self, prerequisites: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
        """All of them."""
        return list(prerequisites)


class BesideTheSteps(BackendStart):
    """A new stack: the backend is created with the networks and waits for the steps itself."""

    description = "beside the release's steps (a new stack: nothing serves yet)"

    def waits_for(self, prerequisites: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
        """None of them: `backend_serve.py` waits for the driver and the steps' token."""
        return []


def backend_start(naming: Naming) -> type[BackendStart]:
    """How this `up` starts a new backend: whether the stack's app network is on the Docker host now.

    Called before the network is declared, so the answer never sees a network this `up` created.
    """
    start: type[BackendStart] = AfterTheSteps
    try:
        docker.get_network(name=app_network_name(naming))
    except Exception:  # noqa: BLE001 - an invoke that finds nothing fails; that is the answer
        start = BesideTheSteps
    pulumi.log.info(f"a new backend image starts {start.description}")
    return start

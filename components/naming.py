"""Physical Docker names and labels.

Every container, network and volume name on the Docker host comes from :func:`physical_name`, so two
stacks (``dev`` and ``prod``) of this project can share one Docker host without colliding, and every
object carries the same labels so it can be found (and cleaned up) by project, stack and role.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Label keys set on every Docker object this program creates.
LABEL_PROJECT = "argusai.project"
LABEL_STACK = "argusai.stack"
LABEL_ROLE = "argusai.role"
LABEL_MANAGED_BY = "argusai.managed-by"
MANAGED_BY = "pulumi"


@dataclass(frozen=True)
class Engine:
    """The Docker engine the names live on: the one the Docker provider talks to."""

    host: str | None = None
    """The provider's `docker:host` (unix://, tcp://, ssh://), or None: DOCKER_HOST, else the local socket."""
    cert_path: str | None = None
    """The provider's `docker:certPath` (ca.pem, cert.pem, key.pem) for a tcp:// host over TLS."""


@dataclass(frozen=True)
class Naming:
    """Derives physical names and labels from the name prefix and the stack."""

    prefix: str
    """Leading part of every name: the `namePrefix` config key, or the project name."""
    stack: str
    """The Pulumi stack, e.g. `dev` or `prod`."""
    engine: Engine = Engine()
    """Where these names are unique: a leftover of an interrupted `up` is looked for there."""

    @property
    def base(self) -> str:
        """The start of every physical name, e.g. `argusai-prod`."""
        return f"{self.prefix}-{self.stack}"

    def physical_name(self, role: str) -> str:
        """Return the Docker name for a role, e.g. `argusai-prod-postgres`."""
        return f"{self.base}-{role}"

    def labels(self, role: str) -> dict[str, str]:
        """Return the labels every Docker object of this role carries."""
        return {
            LABEL_PROJECT: self.prefix,
            LABEL_STACK: self.stack,
            LABEL_ROLE: role,
            LABEL_MANAGED_BY: MANAGED_BY,
        }

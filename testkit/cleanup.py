"""The one cleanup: remove every Docker object a test or benchmark stack labelled as its own."""

from __future__ import annotations

import docker

from components.naming import LABEL_STACK


def remove_stack(client: docker.DockerClient, stack: str) -> None:
    """Remove every container, network and volume labelled `argusai.stack=<stack>`, pass or fail."""
    selector = {"label": f"{LABEL_STACK}={stack}"}
    for container in client.containers.list(all=True, filters=selector):
        container.remove(force=True, v=True)
    for network in client.networks.list(filters=selector, greedy=True):
        # An unlabelled throwaway (`docker run --rm` of a restore) still attached would block removal.
        for container in network.containers:
            container.remove(force=True, v=True)
        network.remove()
    for volume in client.volumes.list(filters=selector):
        volume.remove(force=True)

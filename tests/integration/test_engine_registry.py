"""`latest` upgrades: a new image pushed under the same tag is deployed by the next `up`, data kept.

A real registry runs on loopback (Debian's docker-registry). The program resolves the tag to the
registry's digest (`getRegistryImage`, answered by that registry) and declares `repository@digest`; the
applier finds or pulls images as pulumi-docker's `findImage` does, so nothing here is deployed unless the
engine really pulled it.
"""

from __future__ import annotations

import docker

from testkit import plan as planning
from testkit.images.derive import derive_image
from testkit.registry import LoopbackRegistry

from .conftest import BACKEND_IMAGE, PROXY_IMAGE, Stack, wait_for

REPOSITORY = "argusai/backend"
TAG = "stable"
HEALTHY_TIMEOUT = 90


def test_new_push_under_the_same_tag_is_deployed_and_data_kept(
    stack: Stack, engine: docker.DockerClient, registry: LoopbackRegistry
) -> None:
    """Push v1, deploy; push v2 under the same tag; the next `up` replaces the backend with v2."""
    reference = registry.reference(REPOSITORY, TAG)
    # Every image resolves through the registry: the proxy's too (every stack has it in front).
    proxy_repository, proxy_tag = PROXY_IMAGE.rsplit(":", 1)
    registry.push(engine, PROXY_IMAGE, proxy_repository, proxy_tag)
    config = {
        "backendImage": reference,
        "proxyImage": registry.reference(proxy_repository, proxy_tag),
        "registryDigests": True,
        "backupEnabled": False,
    }
    first_digest = registry.push(engine, BACKEND_IMAGE, REPOSITORY, TAG)
    derived = ""
    stack.registry_digests = registry.digest
    try:
        # The engine holds no copy under the registry's name: the first `up` must pull it.
        registry.remove_local_references(engine)
        stack.up(config)
        backend = stack.container("backend")
        assert backend.attrs["Image"] == engine.images.get(BACKEND_IMAGE).id
        assert any(d.endswith(first_digest) for d in engine.images.get(backend.attrs["Image"]).attrs["RepoDigests"])
        wait_for("backend /health", stack.healthy, HEALTHY_TIMEOUT)
        stack.post_notes(["kept across the upgrade"])

        # Nothing new in the registry: nothing to do.
        assert stack.plan(config).summary() == []

        derived = derive_image(engine, BACKEND_IMAGE, "v2")
        second_digest = registry.push(engine, derived, REPOSITORY, TAG)
        assert second_digest != first_digest
        engine.images.remove(registry.reference(REPOSITORY, TAG), force=True)  # no local shortcut

        steps = planning.plan(stack.state, stack.program(config))
        assert {s.name for s in steps.ops("replace")} == {"backend-image", "backend-container"}
        stack.up(config)
        assert stack.container("backend").attrs["Image"] == derived
        wait_for("backend /health after the upgrade", stack.healthy, HEALTHY_TIMEOUT)
        assert "kept across the upgrade" in stack.notes()
    finally:
        stack.cleanup()
        registry.forget(engine, derived)

"""The loopback registry kit: a pushed image comes back by its digest, and a new image moves the tag."""

from __future__ import annotations

import time

import docker
import pytest

from testkit.images.derive import DERIVED_LABEL, derive_image
from testkit.registry import LoopbackRegistry

from .conftest import BACKEND_IMAGE, record_result

pytestmark = pytest.mark.integration

REPOSITORY = "argusai-test/backend"
TAG = "v"


def test_push_then_pull_by_digest(
    engine: docker.DockerClient, images: dict[str, str], registry: LoopbackRegistry
) -> None:
    reference = registry.reference(REPOSITORY, TAG)
    try:
        started = time.monotonic()
        pushed = registry.push(engine, images[BACKEND_IMAGE], REPOSITORY, TAG)
        push_seconds = time.monotonic() - started
        assert pushed.startswith("sha256:")
        assert registry.digest(reference) == pushed
        assert registry.digest(f"{REPOSITORY}:{TAG}") == pushed

        # Forget the local tag and the digest reference the push recorded, so the pull has to ask the registry.
        pinned = f"{registry.host}/{REPOSITORY}@{pushed}"
        assert pinned in registry.remove_local_references(engine)
        started = time.monotonic()
        pulled = engine.images.pull(pinned)
        pull_seconds = time.monotonic() - started
        assert pulled.id == images[BACKEND_IMAGE]
        assert pinned in engine.images.get(images[BACKEND_IMAGE]).attrs["RepoDigests"]
        record_result(f"registry kit: push {push_seconds:.1f}s, pull by digest {pull_seconds:.1f}s")
    finally:
        registry.forget(engine)


def test_new_image_under_same_tag_changes_digest(
    engine: docker.DockerClient, images: dict[str, str], registry: LoopbackRegistry
) -> None:
    reference = registry.reference(REPOSITORY, TAG)
    derived = ""
    try:
        first = registry.push(engine, images[BACKEND_IMAGE], REPOSITORY, TAG)
        derived = derive_image(engine, BACKEND_IMAGE, "registry-kit")
        assert derived != images[BACKEND_IMAGE]
        assert engine.images.get(derived).labels[DERIVED_LABEL] == "registry-kit"

        second = registry.push(engine, derived, REPOSITORY, TAG)
        assert second != first
        assert registry.digest(reference) == second
        assert engine.images.get(reference).id == derived
    finally:
        registry.forget(engine, derived)

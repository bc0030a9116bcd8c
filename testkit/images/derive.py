"""Images derived from a test image inside a test: a new id (and tag) with a few files or settings changed.

Made by committing an unstarted container, so nothing runs: the release plus one migration, a release
whose command fails, or the same content under a new id and digest for the registry tests.
"""

from __future__ import annotations

import io
import json
import secrets
import tarfile
from collections.abc import Iterator, Mapping, Sequence

import docker
from docker.errors import NotFound

#: Every derived image carries this label (its value names what it is for), so a cleanup can find it.
DERIVED_LABEL = "argusai.test.derived"
FILE_MODE = 0o644


def _archive(files: Mapping[str, bytes]) -> bytes:
    """A tar of `files` (names relative to the directory they are put into)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), FILE_MODE
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def derive_image(
    client: docker.DockerClient,
    base: str,
    label: str,
    *,
    files: tuple[str, Mapping[str, bytes]] | None = None,
    changes: Sequence[str] = (),
    repository: str | None = None,
) -> str:
    """A new image from `base`, labelled `argusai.test.derived=<label>`; returns its id, or its tag.

    `files` is (directory, {name: content}) to add; `changes` are Dockerfile instructions (`CMD [...]`);
    with `repository` the image is tagged `<repository>:<label>-<random>` and that reference returned.
    The caller owns the image (the `derived` test fixture removes it). `base` must declare a command or
    an entry point (every test image does).
    """
    container = client.api.create_container(base, labels={DERIVED_LABEL: label})
    try:
        if files is not None:
            directory, contents = files
            client.api.put_archive(container["Id"], directory, _archive(contents))
        tag = f"{label}-{secrets.token_hex(3)}" if repository else None
        committed = client.api.commit(
            container["Id"],
            repository=repository,
            tag=tag,
            changes=[*changes, f"LABEL {DERIVED_LABEL}={json.dumps(label)}"],
        )
    finally:
        client.api.remove_container(container["Id"], force=True)
    return f"{repository}:{tag}" if repository else str(committed["Id"])


#: A command run to derive an image (a package removed): a cold, loaded machine.
RUN_TIMEOUT_SECONDS = 300


def derive_by_running(
    client: docker.DockerClient,
    base: str,
    label: str,
    command: Sequence[str],
    *,
    repository: str,
    restore: Sequence[str],
    user: str = "0",
) -> str:
    """A new image from `base` with `command` run in it (as `user`), tagged `<repository>:<label>`.

    `restore` are the Dockerfile instructions that put back what the run changed in the image's config
    (its `CMD`, `USER`). Raises RuntimeError with the command's output when it fails.
    """
    container = client.containers.create(base, list(command), user=user, labels={DERIVED_LABEL: label})
    try:
        container.start()
        status = container.wait(timeout=RUN_TIMEOUT_SECONDS)["StatusCode"]
        if status != 0:
            raise RuntimeError(f"deriving {label} from {base}: {container.logs().decode(errors='replace')[-2000:]}")
        container.commit(
            repository=repository, tag=label, changes=[*restore, f"LABEL {DERIVED_LABEL}={json.dumps(label)}"]
        )
    finally:
        container.remove(force=True)
    return f"{repository}:{label}"


def remove_derived(client: docker.DockerClient, references: Iterator[str] | Sequence[str]) -> None:
    """Remove derived images, and first any container still made from one (it would keep it dangling)."""
    for reference in references:
        for container in client.containers.list(all=True, filters={"ancestor": reference}):
            container.remove(force=True)
        try:
            client.images.remove(reference, force=True)
        except NotFound:
            pass

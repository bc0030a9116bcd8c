"""A real image registry on loopback, for tests that push a new image under the same tag.

No remote registry is reachable from the test machines, so :class:`LoopbackRegistry` runs Debian's
``docker-registry`` (the Distribution registry, package ``docker-registry``; ``scripts/docker-engine.sh``
installs it) as a child process on ``127.0.0.1:<free port>``, storing into a temporary directory that
is removed afterwards. dockerd treats every 127.0.0.0/8 registry as insecure (plain HTTP) by default,
so the engine pushes to and pulls from it without any daemon change::

    with LoopbackRegistry() as registry:
        first = registry.push(client, "argusai-test/backend:latest", "argusai/backend", "v1")
        registry.push(client, derive_image(client, "argusai-test/backend:latest", "second"), "argusai/backend", "v1")
        assert registry.digest("argusai/backend:v1") != first

Digests are those of the manifest the engine pushed (Docker v2 schema 2), i.e. what ``docker pull``
and ``RepoDigests`` report: :meth:`LoopbackRegistry.digest` must send the manifest media types in its
``Accept`` header, because the registry answers a request without them with a schema 1 manifest
converted on the fly, whose digest differs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import docker
import docker.errors

from testkit.images.derive import remove_derived
from testkit.net import free_port

#: The Distribution registry binary of Debian's ``docker-registry`` package.
REGISTRY_BINARY = "docker-registry"
START_TIMEOUT_SECONDS = 30
STOP_TIMEOUT_SECONDS = 10
HTTP_TIMEOUT_SECONDS = 5
#: Read timeout while the engine pushes (the client's own default may be a few seconds).
PUSH_TIMEOUT_SECONDS = 600
POLL_SECONDS = 0.2
#: Start attempts: the free port may be taken between picking it and the registry binding it.
START_ATTEMPTS = 3
LOG_TAIL_LINES = 20
#: What the engine may push; without these the registry converts schema 2 to schema 1 (another digest).
MANIFEST_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)


class RegistryError(RuntimeError):
    """The registry did not start, or the engine or registry refused a request."""


class UnknownManifestError(LookupError):
    """The registry holds no manifest under that tag (or digest)."""


def registry_binary() -> str | None:
    """The registry binary's path, or None when the ``docker-registry`` package is not installed."""
    return shutil.which(REGISTRY_BINARY)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log file ("" when it cannot be read)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def _api_timeout(client: docker.DockerClient, seconds: float) -> Iterator[None]:
    """Raise the low-level client's request timeout for the duration (it applies to every stream read)."""
    previous = client.api.timeout
    client.api.timeout = seconds
    try:
        yield
    finally:
        client.api.timeout = previous


class LoopbackRegistry:
    """A Distribution registry serving plain HTTP on 127.0.0.1, for the duration of a ``with`` block."""

    def __init__(self, start_timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Nothing runs until the ``with`` block is entered."""
        self.start_timeout = start_timeout
        self.port = 0
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``: the registry part of an image reference."""
        if not self.port:
            raise RegistryError("the registry is not running (use it as a context manager)")
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """The registry's log (stdout and stderr), inside the temporary directory."""
        if self.directory is None:
            raise RegistryError("the registry is not running (use it as a context manager)")
        return self.directory / "registry.log"

    def reference(self, repository: str, tag: str) -> str:
        """The full reference ``<host>/<repository>:<tag>``."""
        return f"{self.host}/{repository}:{tag}"

    def __enter__(self) -> LoopbackRegistry:
        """Start the registry and wait until ``GET /v2/`` answers 200."""
        binary = registry_binary()
        if binary is None:
            raise RegistryError(
                f"`{REGISTRY_BINARY}` not found: install Debian's docker-registry package (scripts/docker-engine.sh)"
            )
        self.directory = Path(tempfile.mkdtemp(prefix="argusai-registry-"))
        try:
            for attempt in range(1, START_ATTEMPTS + 1):
                if self._start(binary, last=attempt == START_ATTEMPTS):
                    return self
        except BaseException:
            self.close()
            raise
        raise AssertionError("unreachable: the last attempt raises")  # pragma: no cover

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the registry and remove everything it stored."""
        self.close()

    def _config(self, port: int) -> dict[str, Any]:
        """The registry configuration (JSON is YAML, which the registry reads)."""
        assert self.directory is not None
        return {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.directory / "storage")},
                "delete": {"enabled": True},
            },
            # A fixed secret only silences the "generating a random secret" warning.
            "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
        }

    def _start(self, binary: str, *, last: bool) -> bool:
        """Start once on a fresh port; False when the port was taken meanwhile (and this is not the last try)."""
        assert self.directory is not None
        port = free_port()
        config = self.directory / "config.json"
        config.write_text(json.dumps(self._config(port), indent=2))
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
            [binary, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            process_group=0,  # its own group: a Ctrl-C of the test run does not reach it first
        )
        self.port = port
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                tail = _tail(self.log_path)
                self._stop()
                if "address already in use" in tail and not last:
                    return False
                raise RegistryError(f"{REGISTRY_BINARY} exited with {code}:\n{tail}")
            if self._status("GET", "/v2/") == 200:
                return True
            time.sleep(POLL_SECONDS)
        raise RegistryError(
            f"{REGISTRY_BINARY} did not answer GET /v2/ within {self.start_timeout}s:\n{_tail(self.log_path)}"
        )

    def _status(self, method: str, path: str) -> int:
        """The HTTP status of a request without body (0 when nothing answers)."""
        request = urllib.request.Request(f"http://{self.host}{path}", method=method)  # noqa: S310 - loopback http
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def _stop(self) -> None:
        """SIGTERM the registry's process group, SIGKILL it after a bounded wait."""
        process, self._process = self._process, None
        if process is not None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                if process.poll() is not None:
                    break
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(timeout=STOP_TIMEOUT_SECONDS)
                except subprocess.TimeoutExpired:
                    continue
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        """Stop the registry (if running) and remove its temporary directory."""
        self._stop()
        self.port = 0
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def local_references(self, client: docker.DockerClient) -> list[str]:
        """Every tag and digest reference the engine holds to this registry (a push adds both)."""
        prefix = f"{self.host}/"
        found: list[str] = []
        for image in client.images.list(all=True):
            for key in ("RepoTags", "RepoDigests"):
                found.extend(ref for ref in image.attrs.get(key) or [] if ref.startswith(prefix))
        return found

    def remove_local_references(self, client: docker.DockerClient) -> list[str]:
        """Untag every local reference to this registry, leaving the images themselves; return what went."""
        removed = self.local_references(client)
        for reference in removed:
            try:
                client.images.remove(reference, force=True)
            except docker.errors.ImageNotFound:
                pass  # gone meanwhile (e.g. with its image)
        return removed

    def forget(self, client: docker.DockerClient, *derived: str) -> None:
        """Untag every reference to this registry (never a test image by id), then delete derived images."""
        self.remove_local_references(client)
        remove_derived(client, [image for image in derived if image])

    def _split(self, reference: str) -> tuple[str, str]:
        """``(repository, tag or digest)`` of a reference to this registry, with or without its host."""
        prefix = f"{self.host}/"
        name = reference.removeprefix(prefix)
        first = name.split("/", 1)[0]
        if name == reference and "/" in name and ("." in first or ":" in first or first == "localhost"):
            raise ValueError(f"{reference!r} names another registry than {self.host}")
        if "@" in name:
            repository, _, ref = name.partition("@")
        else:
            repository, sep, ref = name.rpartition(":")
            if not sep or "/" in ref:
                raise ValueError(f"{reference!r} has no tag: use <repository>:<tag>")
        if not repository or not ref:
            raise ValueError(f"{reference!r} is not <repository>:<tag> or <repository>@<digest>")
        return repository, ref

    def digest(self, reference: str) -> str:
        """The registry's current manifest digest (``sha256:...``) of ``[<host>/]<repository>:<tag>``.

        Raises:
            UnknownManifestError: the registry holds no such tag.
            RegistryError: the registry answered anything else than 200 or 404.
        """
        repository, ref = self._split(reference)
        url = f"http://{self.host}/v2/{urllib.parse.quote(repository)}/manifests/{urllib.parse.quote(ref)}"
        request = urllib.request.Request(url, method="HEAD")  # noqa: S310 - loopback http
        request.add_header("Accept", ", ".join(MANIFEST_MEDIA_TYPES))
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
                digest = response.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise UnknownManifestError(f"{self.host}/{repository} has no manifest {ref!r}") from None
            raise RegistryError(f"HEAD {url} answered {exc.code}") from exc
        except OSError as exc:
            raise RegistryError(f"HEAD {url} failed: {exc}") from exc
        if not digest or not digest.startswith("sha256:"):
            raise RegistryError(f"HEAD {url} answered without a Docker-Content-Digest header")
        return str(digest)

    def push(self, client: docker.DockerClient, image: str, repository: str, tag: str) -> str:
        """Tag the local ``image`` (id or reference) as ``<host>/<repository>:<tag>``, push it, return its digest.

        The caller owns the new local tag and the ``<host>/<repository>@<digest>`` reference the engine records
        with a push: :meth:`remove_local_references` untags both (never remove a pushed image by id).

        Raises:
            RegistryError: the engine reported an error while pushing.
        """
        target = f"{self.host}/{repository}"
        if not client.api.tag(image, target, tag):
            raise RegistryError(f"could not tag {image} as {target}:{tag}")
        pushed: str | None = None
        with _api_timeout(client, PUSH_TIMEOUT_SECONDS):
            for entry in client.api.push(target, tag=tag, stream=True, decode=True):
                if "error" in entry or "errorDetail" in entry:
                    detail = entry.get("error") or entry.get("errorDetail", {}).get("message")
                    raise RegistryError(f"pushing {image} as {target}:{tag} failed: {detail}")
                aux = entry.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    pushed = str(aux["Digest"])
        return pushed or self.digest(f"{repository}:{tag}")

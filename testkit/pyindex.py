"""A Python package index of the test kit's own, on a stack's network: what a mirror is to a host behind one.

No registry is reachable from the containers here. `package_index()` downloads the wheels of the given pinned
requirements with the host's own pip (its own index configuration; CPython 3.11, manylinux x86_64, binary
only: what the backend image installs) into a cache, writes a PEP 503 "simple" index over them, and serves
it from a container on the given network (`python -m http.server`, in an image that has Python), named
ALIAS there. The program is pointed at it through its own config (`pythonIndexUrl`), exactly as a user
behind a mirror would point it at theirs.
"""

from __future__ import annotations

import hashlib
import html
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import docker

from components.naming import LABEL_ROLE, LABEL_STACK
from testkit.archive import PUBLIC_MODE, tar_of

ALIAS = "pypi"
PORT = 8080
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "wheels"
#: Where the wheels are for, as pip names it: the backend images' Python and machine.
PLATFORM = ("--python-version", "3.11", "--implementation", "cp", "--platform", "manylinux_2_17_x86_64")
DOWNLOAD_TIMEOUT_SECONDS = 600
SERVE_DIR = "/index"
_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-")


def _normalized(name: str) -> str:
    """PEP 503's normalized project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def download(requirements: Sequence[str]) -> list[Path]:
    """The wheels of `requirements` (pinned, no dependencies), from the host's pip into the cache."""
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # noqa: S603 - the host's own pip with arguments made here
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
         "--only-binary=:all:", *PLATFORM, "--dest", str(CACHE), *requirements],
        check=True,
        timeout=DOWNLOAD_TIMEOUT_SECONDS,
    )  # fmt: skip
    wanted = {_normalized(r.split("==")[0]) for r in requirements}
    return sorted(p for p in CACHE.glob("*.whl") if _normalized(_WHEEL_NAME.match(p.name).group("name")) in wanted)


def simple_index(wheels: Sequence[Path]) -> dict[str, bytes]:
    """The index's files: the wheels under `files/`, one `simple/<project>/index.html` per project."""
    files: dict[str, bytes] = {}
    projects: dict[str, list[str]] = {}
    for wheel in wheels:
        data = wheel.read_bytes()
        files[f"{SERVE_DIR}/files/{wheel.name}"] = data
        digest = hashlib.sha256(data).hexdigest()
        link = f'<a href="../../files/{html.escape(wheel.name)}#sha256={digest}">{html.escape(wheel.name)}</a><br>'
        projects.setdefault(_normalized(_WHEEL_NAME.match(wheel.name).group("name")), []).append(link)
    for project, links in projects.items():
        page = f"<!DOCTYPE html><html><body>{''.join(links)}</body></html>"
        files[f"{SERVE_DIR}/simple/{project}/index.html"] = page.encode()
    roots = "".join(f'<a href="{p}/">{p}</a><br>' for p in sorted(projects))
    files[f"{SERVE_DIR}/simple/index.html"] = f"<!DOCTYPE html><html><body>{roots}</body></html>".encode()
    return files


@contextmanager
def package_index(
    client: docker.DockerClient, image: str, network: str, stack: str, requirements: Sequence[str]
) -> Iterator[str]:
    """Serve an index of `requirements` on `network` from a container of `image`; yield its URL there."""
    files = simple_index(download(requirements))
    container = client.containers.create(
        image,
        ["python3", "-m", "http.server", str(PORT), "--directory", SERVE_DIR],
        entrypoint=[],
        user="0",
        network=network,
        labels={LABEL_STACK: stack, LABEL_ROLE: "package-index"},
    )
    try:
        container.put_archive("/", tar_of({path: (data, PUBLIC_MODE) for path, data in files.items()}))
        # The network's alias, as a mirror's name on the user's network.
        client.api.disconnect_container_from_network(container.id, network)
        client.api.connect_container_to_network(container.id, network, aliases=[ALIAS])
        container.start()
        yield f"http://{ALIAS}:{PORT}/simple"
    finally:
        container.remove(force=True)

"""The kit's image of the release starts like the published one: its byte code is valid.

The published image installs with pip in a Dockerfile, which keeps files' mtimes, so Python loads the
byte code pip wrote. The kit builds its image with mmdebstrap, which clamps mtimes (see
`testkit/images/recipes/argusai_backend.py`, BYTE_CODE): with timestamp-based byte code every module the
release imports was compiled from source at every start, and every figure measured on the release
(its start, the gate, the benchmark's floor) was the kit's, not the release's.
"""

from __future__ import annotations

import base64
import os

import docker
import pytest

from testkit.images.recipes import ARGUSAI_BACKEND

from .conftest import record_result, require_release_image

pytestmark = pytest.mark.argusai

# Imports what the release's start-up imports (`main`, the app, every heavy library it loads at import)
# and prints each module Python compiled from source on the way, instead of loading its byte code.
COMPILED_ON_IMPORT = """
import importlib._bootstrap_external as loaders
compiled = []
source_to_code = loaders.SourceLoader.source_to_code
def counting(self, data, path, *args, **kwargs):
    compiled.append(path)
    return source_to_code(self, data, path, *args, **kwargs)
loaders.SourceLoader.source_to_code = counting
import main
print("COMPILED", len(compiled))
for path in compiled[:5]:
    print("EXAMPLE", path)
"""


def test_the_release_imports_its_byte_code_and_compiles_nothing(engine: docker.DockerClient) -> None:
    """Importing the release's `main` compiles no module of the venv or of /app from source."""
    require_release_image(engine)
    output = engine.containers.run(
        ARGUSAI_BACKEND.tag,
        ["python", "-c", COMPILED_ON_IMPORT],
        # The release's settings refuse to load without its two keys.
        environment={
            "ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "JWT_SECRET_KEY": os.urandom(16).hex(),
            "DATABASE_URL": "sqlite:////tmp/app.db",
        },
        network_mode="none",
        remove=True,
        stderr=False,
    ).decode()
    # The release logs to stdout as well: only the lines marked here count.
    marked = [line.split(" ", 1) for line in output.splitlines() if line.startswith(("COMPILED ", "EXAMPLE "))]
    compiled = next(int(value) for mark, value in marked if mark == "COMPILED")
    examples = [value for mark, value in marked if mark == "EXAMPLE"]
    assert compiled == 0, f"{compiled} modules compiled from source on import, e.g.:\n" + "\n".join(examples)
    record_result(f"argusai image: `import main` loads byte code only ({compiled} modules compiled from source)")

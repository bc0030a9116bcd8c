"""The real ArgusAI backend (``argusai-test/argusai-backend:<release>``), from the release checkout.

Its Python packages are pinned in ``argusai/constraints.txt``, downloaded as wheels on the build host
with its own pip configuration and installed into a virtual environment in the image without any index.
"""

from __future__ import annotations

from testkit.images.recipe import ARGUSAI_RELEASE, ARGUSAI_SOURCE_ENV, DEFAULT_PATH, PythonRelease, Recipe

APP_USER = "appuser"
APP_UID = 1000
VENV = "/opt/venv"
# Inside the chroot: no host pip configuration or PIP_* variable, only the staged wheels.
CHROOT_PIP = (
    f'chroot "$1" env -i PATH={DEFAULT_PATH} PIP_CONFIG_FILE=/dev/null PIP_NO_CACHE_DIR=1 '
    f"PIP_DISABLE_PIP_VERSION_CHECK=1 {VENV}/bin/pip"
)

# Byte code checked against its source's hash, not its mtime. mmdebstrap writes the root file system with
# `tar --clamp-mtime` at the time it started (SOURCE_DATE_EPOCH when set), so every file the hooks write
# gets an older mtime than the one its timestamp-based .pyc recorded: Python then takes all of them as
# stale and compiles every module it imports from source, at every start (PYTHONDONTWRITEBYTECODE keeps
# it from writing them). Measured: the release started in 15-19 s instead of 10-11 s, the gate's imports
# took twice as long. The published image (pip in a Dockerfile, which keeps mtimes) has valid byte code;
# so has this one now. A file a test changes in a derived image no longer matches its hash: compiled anew.
# Forced (`-f`): a module something imported during the build already has timestamp-based byte code, which
# compileall would otherwise take as up to date and keep.
BYTE_CODE = "-f --invalidation-mode checked-hash"

ARGUSAI_BACKEND = Recipe(
    tag=f"argusai-test/argusai-backend:{ARGUSAI_RELEASE}",
    # The release's Dockerfile also installs ffmpeg, libgl1, libglib2.0-0 and
    # libpq5. None is needed: the manylinux wheels of av and
    # opencv-python-headless carry their own FFmpeg libraries (av.libs,
    # opencv_python_headless.libs), the headless OpenCV needs no libGL, and
    # psycopg-binary carries its own libpq. But the wheels of numpy, opencv,
    # grpcio and others link the system's libstdc++ (not in the essential set).
    # python3-venv gives the venv its pip.
    packages=("python3", "python3-venv", "libstdc++6", "ca-certificates"),
    release=PythonRelease(
        source_env=ARGUSAI_SOURCE_ENV,
        subdir="backend",
        target="/app",
        constraints="argusai/constraints.txt",
        # Why each is left out: see argusai/constraints.txt (loaded only on use, or test-only).
        left_out=("sentence-transformers", "firebase-admin", "pytest", "pytest-asyncio", "pytest-cov"),
        extra_requirements=("psycopg[binary]", "greenlet"),
        sdist_only=("wsdiscovery", "onvif-zeep", "http-ece"),
        always_excluded=("__pycache__", "*.py[cod]", "tests", ".pytest_cache", ".env"),
        uid=APP_UID,
    ),
    customize_hooks=(
        # The user the release's Dockerfile creates (useradd --create-home
        # --uid 1000); no passwd package in the essential set.
        f"echo '{APP_USER}:x:{APP_UID}:{APP_UID}::/home/{APP_USER}:/bin/bash' >> \"$1/etc/passwd\"",
        f"echo '{APP_USER}:x:{APP_UID}:' >> \"$1/etc/group\"",
        f'install -d -o {APP_UID} -g {APP_UID} -m 0755 "$1/home/{APP_USER}"',
        f'chroot "$1" python3 -m venv {VENV}',
        'mkdir "$1/tmp/release-wheels" && cp -a "$RELEASE_WHEELS/." "$1/tmp/release-wheels/"',
        # No byte code from pip: it would be stale in the image (BYTE_CODE, below).
        f"{CHROOT_PIP} install --no-compile --no-index --find-links /tmp/release-wheels"
        " -r /tmp/release-wheels/requirements.txt -c /tmp/release-wheels/constraints.txt",
        f"{CHROOT_PIP} check",
        'rm -rf "$1/tmp/release-wheels"',
        f'chroot "$1" {VENV}/bin/python -m compileall -q {BYTE_CODE} {VENV}/lib',
        # /app and /app/data owned by appuser, as `chown -R appuser /app` upstream.
        'tar -C "$1" --numeric-owner --same-owner -xf "$RELEASE_APP_TAR"',
        # The application's byte code, as appuser (who owns /app).
        f'chroot --userspec={APP_UID}:{APP_UID} "$1" {VENV}/bin/python -m compileall -q {BYTE_CODE} /app',
    ),
    changes=(
        f"ENV PATH={VENV}/bin:{DEFAULT_PATH}",
        "ENV LANG=C.UTF-8",
        "ENV PYTHONPATH=/app",
        "ENV PYTHONDONTWRITEBYTECODE=1",
        "ENV PYTHONUNBUFFERED=1",
        "ENV DEBUG=false",
        "ENV LOG_LEVEL=INFO",
        # LiteLLM would fetch its model price map from the internet at every
        # start; use the copy bundled with the package.
        "ENV LITELLM_LOCAL_MODEL_COST_MAP=True",
        "WORKDIR /app",
        f"USER {APP_USER}",
        'CMD ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000"]',
        "EXPOSE 8000",
    ),
)

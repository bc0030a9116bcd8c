"""The backend stand-in (``argusai-test/backend:latest``): ``backend/app.py``.

A stdlib HTTP stand-in for ArgusAI's FastAPI backend, on PostgreSQL or SQLite.
"""

from __future__ import annotations

from testkit.images.recipe import DEFAULT_PATH, Recipe, StandInFile

BACKEND = Recipe(
    tag="argusai-test/backend:latest",
    packages=(
        "python3",
        "python-is-python3",
        "python3-psycopg2",
        # The driver a stack names by default (psycopg 3): the program's driver step finds it in the image.
        "python3-psycopg",
        "python3-cryptography",
        "dumb-init",
    ),
    files=(StandInFile("backend/app.py", "/app/app.py"),),
    customize_hooks=('mkdir -p "$1/app/data"',),
    changes=(
        f"ENV PATH={DEFAULT_PATH}",
        "ENV LANG=C.UTF-8",
        "ENV PYTHONUNBUFFERED=1",
        "ENV PYTHONDONTWRITEBYTECODE=1",
        "WORKDIR /app",
        # dumb-init as PID 1: a sidecar command run in this image (a python
        # backup loop without signal handlers) still stops on SIGTERM.
        'ENTRYPOINT ["dumb-init", "--"]',
        'CMD ["python", "/app/app.py"]',
        "EXPOSE 8000",
    ),
)

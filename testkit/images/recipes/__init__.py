"""The image recipes, one module each, and the sets the build knows.

``RECIPES`` are built by default; ``ALL_RECIPES`` adds the images of the real ArgusAI release, built
only when named (``--only NAME``) because only some tests need them.
"""

from __future__ import annotations

from testkit.images.recipe import Recipe
from testkit.images.recipes.argusai_backend import ARGUSAI_BACKEND
from testkit.images.recipes.argusai_frontend import ARGUSAI_FRONTEND
from testkit.images.recipes.argusai_frontend_same_origin import ARGUSAI_FRONTEND_SAME_ORIGIN
from testkit.images.recipes.backend import BACKEND
from testkit.images.recipes.caddy import CADDY
from testkit.images.recipes.frontend import FRONTEND
from testkit.images.recipes.pebble import PEBBLE
from testkit.images.recipes.postgres import POSTGRES
from testkit.images.recipes.postgres17 import POSTGRES_17

__all__ = [
    "ALL_RECIPES",
    "ARGUSAI_BACKEND",
    "ARGUSAI_FRONTEND",
    "ARGUSAI_FRONTEND_SAME_ORIGIN",
    "BACKEND",
    "CADDY",
    "FRONTEND",
    "PEBBLE",
    "POSTGRES",
    "POSTGRES_17",
    "RECIPES",
]

RECIPES: tuple[Recipe, ...] = (POSTGRES, BACKEND, FRONTEND, CADDY, PEBBLE)
# Buildable with --only: the release images, which only some tests need, and the newer PostgreSQL major the
# day-two tests upgrade to.
ALL_RECIPES: tuple[Recipe, ...] = (
    *RECIPES,
    ARGUSAI_BACKEND,
    ARGUSAI_FRONTEND,
    ARGUSAI_FRONTEND_SAME_ORIGIN,
    POSTGRES_17,
)

"""The real ArgusAI frontend built for one origin behind a reverse proxy (``...:<release>-same-origin``)."""

from __future__ import annotations

from dataclasses import replace

from testkit.images.recipes.argusai_frontend import ARGUSAI_FRONTEND, ARGUSAI_NEXT

# The same source for one origin behind a reverse proxy: the browser calls relative /api/v1 URLs, and the
# Next server's own /api/v1 rewrite goes to the backend's alias on the stack's network.
ARGUSAI_FRONTEND_SAME_ORIGIN = replace(
    ARGUSAI_FRONTEND,
    tag=f"{ARGUSAI_FRONTEND.tag}-same-origin",
    short_name="argusai-frontend-same-origin",
    next_release=replace(ARGUSAI_NEXT, build_env=(("NEXT_PUBLIC_API_URL", ""), ("BACKEND_URL", "http://backend:8000"))),
)

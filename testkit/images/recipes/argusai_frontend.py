"""The real ArgusAI frontend (``argusai-test/argusai-frontend:<release>``), built as the published image is.

Its npm packages are pinned by the release's own ``package-lock.json``; the image gets only the
standalone server, its static files and ``public``.
"""

from __future__ import annotations

from testkit.images.recipe import ARGUSAI_RELEASE, ARGUSAI_SOURCE_ENV, DEFAULT_PATH, NextRelease, Recipe

# The first Debian suite whose nodejs (20.19) runs Next.js 16 (it needs >= 20.9; bookworm has 18).
NODE_SUITE = "trixie"
NEXT_USER = "nextjs"
NEXT_GROUP = "nodejs"
NEXT_UID = 1001  # the release's Dockerfile: adduser --system --uid 1001 nextjs, addgroup --gid 1001 nodejs

ARGUSAI_NEXT = NextRelease(
    source_env=ARGUSAI_SOURCE_ENV,
    subdir="frontend",
    target="/app",
    # As published: the Dockerfile's default ARG, baked into the browser bundle and into the
    # /api/v1 rewrite (next.config.ts: BACKEND_URL || NEXT_PUBLIC_API_URL).
    build_env=(("NEXT_PUBLIC_API_URL", "http://localhost:8000"),),
    fonts_mock="argusai/next-font-google-mocks.js",
    always_excluded=("node_modules", ".next"),
    uid=NEXT_UID,
    gid=NEXT_UID,
)

ARGUSAI_FRONTEND = Recipe(
    tag=f"argusai-test/argusai-frontend:{ARGUSAI_RELEASE}",
    suite=NODE_SUITE,
    # The standalone server needs node only (its native modules come with it);
    # the CA bundle, as node:20-alpine has, for any HTTPS the server makes.
    packages=("nodejs", "ca-certificates"),
    next_release=ARGUSAI_NEXT,
    customize_hooks=(
        # No passwd package in the essential set, so the entries are written directly.
        f"echo '{NEXT_USER}:x:{NEXT_UID}:{NEXT_UID}::/home/{NEXT_USER}:/usr/sbin/nologin' >> \"$1/etc/passwd\"",
        f"echo '{NEXT_GROUP}:x:{NEXT_UID}:' >> \"$1/etc/group\"",
        f'install -d -o {NEXT_UID} -g {NEXT_UID} -m 0755 "$1/home/{NEXT_USER}"',
        # /app/public owned by root, the standalone server and .next (static files too) by nextjs, as upstream.
        'tar -C "$1" --numeric-owner --same-owner -xf "$RELEASE_APP_TAR"',
    ),
    changes=(
        f"ENV PATH={DEFAULT_PATH}",
        "ENV NODE_ENV=production",
        "ENV NEXT_TELEMETRY_DISABLED=1",
        "ENV HOSTNAME=0.0.0.0",
        "ENV PORT=3000",
        "WORKDIR /app",
        f"USER {NEXT_USER}",
        # node as PID 1, as upstream: the standalone server stops on SIGTERM itself.
        'CMD ["node", "server.js"]',
        "EXPOSE 3000",
    ),
)

"""The frontend stand-in (``argusai-test/frontend:latest``): ``frontend/server.js``, a node server.

Laid out as the release's Next.js standalone image is (``/app/server.js``, ``/app/.next/static`` owned by the
image's user), with one browser chunk holding the API URL the published image bakes in, so the program's
origin rewrite has the same work to do on it.
"""

from __future__ import annotations

from testkit.images.recipe import DEFAULT_PATH, Recipe, StandInFile

FRONTEND_UID = 1000
FRONTEND = Recipe(
    tag="argusai-test/frontend:latest",
    packages=("nodejs", "dumb-init"),
    files=(
        StandInFile("frontend/server.js", "/app/server.js"),
        StandInFile("frontend/next-chunk.js", "/app/.next/static/chunks/app.js"),
    ),
    # An unprivileged user, as the Next.js image runs as; no passwd package
    # in the essential set, so the entries are written directly.
    customize_hooks=(
        f"echo 'node:x:{FRONTEND_UID}:{FRONTEND_UID}:node:/app:/usr/sbin/nologin' >> \"$1/etc/passwd\"",
        f"echo 'node:x:{FRONTEND_UID}:' >> \"$1/etc/group\"",
        # The build output is the image user's, as in the release's image (chown --chown=nextjs).
        f'chown -R {FRONTEND_UID}:{FRONTEND_UID} "$1/app/.next"',
    ),
    changes=(
        f"ENV PATH={DEFAULT_PATH}",
        "ENV LANG=C.UTF-8",
        "ENV NODE_ENV=production",
        "WORKDIR /app",
        "USER node",
        'ENTRYPOINT ["dumb-init", "--"]',
        'CMD ["node", "/app/server.js"]',
        "EXPOSE 3000",
    ),
)

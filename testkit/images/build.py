"""Build the stand-in images the integration tests deploy, from Debian packages.

No image registry is reachable from the test machines, so the images the
Pulumi program and its tests deploy are made here: mmdebstrap bootstraps a
minimal Debian root file system holding only the packages an image needs,
and ``docker import`` turns its tarball into an image.

- ``argusai-test/postgres:15``: Debian's PostgreSQL 15 behind an entry point
  that follows the official ``postgres`` image's contract.
- ``argusai-test/backend:latest``: ``backend/app.py``, a stdlib HTTP stand-in
  for ArgusAI's FastAPI backend (PostgreSQL or SQLite).
- ``argusai-test/frontend:latest``: ``frontend/server.js``, a node stand-in
  for the Next.js frontend.
- ``argusai-test/caddy:2``: Debian's Caddy 2 with the official ``caddy``
  image's contract (config file, XDG directories, command, ports).
- ``argusai-test/pebble:2``: Debian's Pebble, Let's Encrypt's ACME test server.

More images are built only on request (``--only NAME``), not by default, from
the unmodified ArgusAI release source, found through the environment variable
``ARGUSAI_SOURCE`` (the release checkout's root):

- ``argusai-test/argusai-backend:c5efc85``, the real backend. Its Python
  packages are pinned in ``argusai/constraints.txt``, downloaded as wheels on
  this machine with its own pip configuration and installed into a virtual
  environment in the image without any index.
- ``argusai-test/argusai-frontend:c5efc85`` (``argusai-frontend``), the real
  Next.js frontend built as the published image is, and
  ``...:c5efc85-same-origin`` (``argusai-frontend-same-origin``), the same
  source built for one origin behind a reverse proxy. Its npm packages are
  pinned by the release's own ``package-lock.json``: this machine's npm fills
  a package cache with them (its npm configuration decides where from), then
  a Debian trixie chroot with Debian's node and npm installs them with
  ``npm ci --offline`` and runs ``next build`` without a network; the image
  gets only the standalone server, its static files and ``public``.

Each image carries the label ``argusai.recipe``: a SHA-256 over its recipe
(packages, build options, stand-in sources; for a release image also its
pins and every file of the release source). An image whose tag already
carries the current hash is not built again, so a warm run takes seconds.
The root file system tarballs are also kept, outside the repository, in
``${XDG_CACHE_HOME:-$HOME/.cache}/argusai-infra/images``: an image removed from
the engine comes back with a plain import.

Run ``python -m testkit.images.build`` (root, with a running engine: see
``scripts/docker-engine.sh``), or call :func:`testkit.images.ensure.ensure_images`.
The Debian mirror is read from this machine's apt configuration.

This module is the command line. The recipes are data (:mod:`testkit.images.recipes`, on the
:class:`testkit.images.recipe.Recipe` type); :mod:`testkit.images.rootfs` bootstraps and imports root
file systems, :mod:`testkit.images.python_release` and :mod:`testkit.images.next_release` prepare what
the release images install, and :mod:`testkit.images.ensure` decides what to build.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from testkit.images.ensure import DEFAULT_JOBS, ensure_images
from testkit.images.host import BuildError
from testkit.images.recipes import ALL_RECIPES, RECIPES


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild every image")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="images built at the same time")
    parser.add_argument(
        "--no-tarball-cache",
        action="store_true",
        help="neither use nor keep root file system tarballs",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=[recipe.name for recipe in ALL_RECIPES],
        help="build only this image (repeatable); the release images (argusai-*) are built only when named",
    )
    args = parser.parse_args(argv)
    recipes = [r for r in ALL_RECIPES if r.name in args.only] if args.only else list(RECIPES)
    try:
        images = ensure_images(
            force=args.force,
            jobs=args.jobs,
            use_tarball_cache=not args.no_tarball_cache,
            recipes=recipes,
        )
    except BuildError as exc:
        print(f"[images] error: {exc}", file=sys.stderr)
        return 1
    for tag, image_id in images.items():
        print(f"{tag} {image_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

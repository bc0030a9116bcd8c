"""The first admin, with the password the stack generated, made by the release's own code before its first start.

Run as `python -m admin_seed` in the backend image (working directory `/app`, the release's `app` package
importable), with DATABASE_URL, the release's settings (ENCRYPTION_KEY, JWT_SECRET_KEY) and ADMIN_PASSWORD.

It does what the release's start-up does, in the same order: `Base.metadata.create_all`, then
`ensure_admin_exists` (which makes the admin only when the database has no user at all), with one change:
the password is ADMIN_PASSWORD instead of a random one the release would print in its log. A database that
has any user is left as it is: an existing stack's users are never touched. Prints what it did.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    """Seed the first admin when there is no user; 0 either way, 1 when the release's code fails."""
    password = os.environ["ADMIN_PASSWORD"]
    import app.models  # noqa: F401 - the models create_all makes, as the release imports them at start
    from app.core.database import Base, SessionLocal, engine

    # The service `app.api.v1.auth.ensure_admin_exists` hands the session to: the same code, without importing
    # the API's routers (FastAPI and every endpoint, about a second on a small host).
    from app.services.user_service import UserService

    Base.metadata.create_all(bind=engine)
    # The release's own path, with the password it would have made at random replaced by the stack's.
    UserService._generate_password = lambda self: password  # type: ignore[method-assign]  # noqa: SLF001
    session = SessionLocal()
    try:
        created, _ = UserService(session).ensure_admin_exists()
    finally:
        session.close()
    if created:
        print("admin-seed: made the first admin (user admin) with the stack's adminPassword")
    else:
        print("admin-seed: the database has users already; none was touched")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""ArgusAI's backend as its image starts it, once the release's steps passed for it (`backend-serve`).

The release's image runs `uvicorn main:app --host 0.0.0.0 --port 8000` in `/app`. This runs the same
server in the same process layout (`python -m backend_serve`, working directory `/app`, PID 1, uvicorn's
own signal handling and logging), in four stages:

1. The PostgreSQL driver, when DRIVER_MODULE names one: wait until it imports (the image's own, or the
   driver volume's once the driver step moved it into place). The release creates its engine at import.
2. `import main`: the release's imports, most of its start (seconds on a small host). On a new stack the
   container is created with the networks, so these run while PostgreSQL starts and the steps run.
3. Wait until RELEASE_STEPS_PASSED holds RELEASE_STEPS_TOKEN: the release's steps (`release_steps.py`)
   write the token of their run there once every part is done. The token is new for every network and
   backend image, so a file left by an earlier stack or image never matches. A container that served once
   serves again at once after a restart (SERVED, in its own file system): its steps passed then.
4. uvicorn serves `main.app` on 0.0.0.0:SERVE_PORT, as the release's command does.

A release whose layout differs (no `main.app`) stops here with a message naming what is missing.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.1
# How often a wait says it is still waiting (the container's log).
REPORT_SECONDS = 60
SERVED = Path("/tmp/argusai-backend.served")  # noqa: S108 - in this container's own file system
APP_MODULE, APP_ATTRIBUTE = "main", "app"
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - the release's own command listens on every address of the container


def say(message: str) -> None:
    """One line on the container's log."""
    print(f"backend-serve: {message}", flush=True)


def wait_until(ready: Any, what: str) -> None:
    """Poll `ready()` until true, saying now and then what it waits for."""
    said = 0.0
    while not ready():
        now = time.monotonic()
        if now - said >= REPORT_SECONDS:
            say(f"waiting for {what}")
            said = now
        time.sleep(POLL_SECONDS)


def driver_ready(module: str) -> bool:
    """Whether the driver module can be imported now (a directory moved into place since the last look too)."""
    importlib.invalidate_caches()
    return importlib.util.find_spec(module) is not None


def steps_passed(passed: Path, token: str) -> bool:
    """Whether the release's steps wrote this backend's token."""
    try:
        return passed.read_text().strip() == token
    except OSError:
        return False


def load_app() -> Any:
    """The release's ASGI app (`main:app`), or a message naming what the image lacks."""
    try:
        module = importlib.import_module(APP_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != APP_MODULE:
            raise
        raise SystemExit(
            f"backend-serve: no module `{APP_MODULE}` in {os.getcwd()}: not the layout of an ArgusAI release "
            f"(`uvicorn {APP_MODULE}:{APP_ATTRIBUTE}`); for another image set argusai:schemaGate false"
        ) from None
    app = getattr(module, APP_ATTRIBUTE, None)
    if app is None:
        raise SystemExit(
            f"backend-serve: `{APP_MODULE}` has no `{APP_ATTRIBUTE}`: not the layout of an ArgusAI release"
        )
    return app


def main() -> None:
    """Wait for the driver, import the release, wait for its steps, serve."""
    driver = os.environ.get("DRIVER_MODULE", "")
    if driver:
        wait_until(lambda: driver_ready(driver), f"the PostgreSQL driver ({driver})")
    app = load_app()
    if not SERVED.exists():
        passed, token = Path(os.environ["RELEASE_STEPS_PASSED"]), os.environ["RELEASE_STEPS_TOKEN"]
        wait_until(lambda: steps_passed(passed, token), "the release's steps")
        SERVED.touch()
    import uvicorn  # the release's own server, as its command runs it

    uvicorn.run(app, host=ANY_ADDRESS, port=int(os.environ["SERVE_PORT"]))


if __name__ == "__main__":
    sys.exit(main())

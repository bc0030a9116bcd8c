"""The release's steps before a backend image serves, in one process (`release-steps`).

Run as `python -m release_steps` in the backend image (working directory `/app`), with what each part needs
(see each module). RELEASE_PARTS names the parts to run, separated by spaces; they always run in this
order, whatever order they are named in:

1. `schema_gate`: the database to the release's Alembic head;
2. `data_move` (a server's stack): the SQLite file's rows copied in once, the file still locked after;
3. `key_rotation`: every stored credential under ENCRYPTION_KEY;
4. `admin_seed`: the first admin with the stack's password, on a database with no user.

Why one process: each part imports the release's models and settings, which takes seconds on a small
host (most of the gate's time); run as four containers, a first deploy paid it four times before the
backend could start. The parts share the imports and nothing else: each opens its own connections.

The first part that fails ends the run with its status, the later ones not run; the data move's lock goes
with the process. After the last part, RELEASE_STEPS_PASSED gets RELEASE_STEPS_TOKEN (whole or not at all:
renamed into place), which lets a backend waiting for this run serve (`backend_serve.py`); then the step is
done (STEP_DONE touched); with the data move, the process then holds the SQLite lock until the new backend
answers (`data_move`'s MOVE_HOLD).
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

ORDER = ("schema_gate", "data_move", "key_rotation", "admin_seed")


def parts() -> list[str]:
    """The parts RELEASE_PARTS names, in ORDER; an unknown or missing name is refused."""
    named = os.environ.get("RELEASE_PARTS", "").split()
    unknown = sorted(set(named) - set(ORDER))
    if unknown or not named:
        raise SystemExit(
            f"release-steps: RELEASE_PARTS must name some of {', '.join(ORDER)} (got {' '.join(named) or 'none'})"
        )
    return [part for part in ORDER if part in named]


def run(part: str) -> tuple[int, Callable[[], None] | None]:
    """Run one part: its exit status, and for the data move what ends it."""
    try:
        if part == "data_move":
            return importlib.import_module("data_move.__main__").begin()
        return importlib.import_module(part).main(), None
    except SystemExit as exc:  # a part's own exit, with its message (key_rotation's refusal)
        if isinstance(exc.code, int):
            return exc.code, None
        print(exc.code, file=sys.stderr, flush=True)
        return 1, None
    except Exception:  # a failure the part does not report itself (a migration that raises)
        traceback.print_exc()
        return 1, None


def record_passed() -> None:
    """Write this run's token where the backend waits for it (when the environment names both)."""
    passed, token = os.environ.get("RELEASE_STEPS_PASSED"), os.environ.get("RELEASE_STEPS_TOKEN")
    if not passed or not token:
        return
    path = Path(passed)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(f"{token}\n")
    partial.replace(path)
    print("release-steps: passed; the backend may serve", flush=True)


def main() -> int:
    """Run the named parts in order; the first non-zero status ends the run."""
    end: Callable[[], None] | None = None
    for part in parts():
        status, ending = run(part)
        end = ending or end
        if status:
            print(f"release-steps: {part} failed (status {status}); the steps after it did not run", flush=True)
            return status
    record_passed()
    if end is not None:
        end()  # touches STEP_DONE, and holds the SQLite lock until the new backend answers
    return 0


if __name__ == "__main__":
    sys.exit(main())

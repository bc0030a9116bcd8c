"""Faults under load, on the real release: the figures of each, from the load tests that measure them.

The measurement is `tests/integration/test_load.py` (marker `load`): a client writes events through the
release's API at 10 a second while a fault happens (a backup then a restore, an upgrade and the data move,
a full backups volume, PostgreSQL SIGKILLed, the engine restarted), and every acknowledged event is looked
up afterwards. This runs those tests alone, one after the other (the engine restart stops every container,
so nothing else may run), and prints their result lines: per fault the writes acknowledged, the writes that
failed, the longest gap between two acknowledged writes, and acknowledged-then-missing, which must be 0.

Needs root, the engine, and the release's image (`python -m testkit.images.build --only argusai-backend`,
ARGUSAI_SOURCE set). Run: `python -m benchmarks.faults`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The load tests take a few minutes each; the engine restart's the longest.
TIMEOUT_SECONDS = 3600
RESULT_PREFIX = "RESULT load"


def main() -> None:
    """Run the load tests and print their figures; exit with their status."""
    done = subprocess.run(  # noqa: S603 - the project's own tests
        [sys.executable, "-m", "pytest", "-m", "load", "-s", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    results = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    for line in dict.fromkeys(results):  # the summary repeats each line
        print(line.removeprefix("RESULT "), flush=True)
    if done.returncode != 0:
        print(done.stdout[-3000:], file=sys.stderr)
        sys.exit(done.returncode)


if __name__ == "__main__":
    main()

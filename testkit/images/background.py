"""Files made in a thread while mmdebstrap bootstraps, and the hook that waits for them inside its run."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path


def wait_hook(variable: str) -> str:
    """A hook that waits until the path in $VARIABLE exists, and fails once ``$VARIABLE.failed`` does."""
    return f'until [ -e "${variable}" ]; do [ ! -e "${variable}.failed" ] || exit 1; sleep 1; done'


class Background:
    """Makes a path in a thread and links it at LINK when done (LINK.failed on failure), for hooks waiting on it.

    So a bootstrap can run while what its hooks need later is still being made.
    """

    def __init__(self, make: Callable[[], Path], link: Path) -> None:
        """Start making the path with MAKE; LINK is where it appears (see :func:`wait_hook`)."""
        self.link = link
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(make,), daemon=True)
        self._thread.start()

    def _run(self, make: Callable[[], Path]) -> None:
        try:
            target = make()
            temporary = self.link.with_name(f"{self.link.name}.link")
            temporary.symlink_to(target)
            temporary.replace(self.link)
        except BaseException as exc:  # handed to the thread waiting for the result
            self.error = exc
            self.link.with_name(f"{self.link.name}.failed").touch()

    def raise_if_failed(self) -> None:
        """Re-raise the thread's error if it has failed (without waiting for it)."""
        if not self._thread.is_alive() and self.error is not None:
            raise self.error

    def result(self) -> None:
        """Wait for the thread; re-raise its error."""
        self._thread.join()
        if self.error is not None:
            raise self.error

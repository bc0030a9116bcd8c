"""testkit/images/next_release.py: a filled npm cache must hold what this machine's offline build needs."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

from testkit.images.next_release import NPM_CPU, missing_for_this_machine

CPU = NPM_CPU.get(platform.machine(), platform.machine())


def test_an_optional_package_for_this_machine_that_npm_skipped_is_missing(tmp_path: Path) -> None:
    """A package npm left out (its download failed) is seen by the fill: the SWC compiler, for one."""
    lock = {
        "packages": {
            "": {"name": "frontend"},
            "node_modules/next": {"version": "16.2.6"},
            "node_modules/@next/swc-linux-x64-gnu": {"optional": True, "os": [sys.platform], "cpu": [CPU]},
            "node_modules/@next/swc-installed": {"optional": True, "os": [sys.platform], "cpu": [CPU]},
            "node_modules/@next/swc-elsewhere": {"optional": True, "os": ["no-such-os"], "cpu": [CPU]},
            "node_modules/@next/swc-other-cpu": {"optional": True, "os": [sys.platform], "cpu": ["no-such-cpu"]},
            # Another C library's binary, and a dependency of a binary for another platform: npm skips both.
            "node_modules/@x/binding-other-libc": {"optional": True, "os": [sys.platform], "cpu": [CPU], "libc": ["x"]},
            "node_modules/@emnapi/core": {"optional": True},
        }
    }
    (tmp_path / "node_modules/@next/swc-installed").mkdir(parents=True)
    assert missing_for_this_machine(tmp_path, lock) == ["@next/swc-linux-x64-gnu"]
    (tmp_path / "node_modules/@next/swc-linux-x64-gnu").mkdir()
    assert missing_for_this_machine(tmp_path, lock) == []

"""Stand-in programs for the scripts' unit tests: shell scripts in a directory put first on PATH."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


def stand_in_programs(directory: Path, programs: Mapping[str, str]) -> Path:
    """Write each program (name -> `sh` body) into `directory` (made if missing), executable; return it."""
    directory.mkdir(exist_ok=True)
    for name, body in programs.items():
        program = directory / name
        program.write_text(f"#!/bin/sh\n{body}")
        program.chmod(0o755)
    return directory


def path_first(directory: Path) -> str:
    """A PATH that finds `directory`'s programs before the host's."""
    return f"{directory}{os.pathsep}{os.environ['PATH']}"

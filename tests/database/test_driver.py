"""The driver step's script (components/scripts/install_driver.sh), run by a real sh with a stand-in python."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from components.scripts import INSTALL_DRIVER
from testkit.stand_ins import path_first, stand_in_programs

WAIT_SECONDS = 30
# No driver in the image, pip present; `pip install` records its arguments and fails (no index reached).
FAKE_PYTHON = """case "$*" in
"-c import"*) exit 1 ;;
"-m pip --version") exit 0 ;;
"-m pip install"*) echo "$*" > "$ARGS_FILE"; exit 1 ;;
esac
exit 1
"""


def _install(tmp_path: Path, index_url: str) -> tuple[subprocess.CompletedProcess[str], str]:
    bin_dir = stand_in_programs(tmp_path / "bin", {"python": FAKE_PYTHON})
    args = tmp_path / "args"
    done = subprocess.run(  # noqa: S603 - runs our own script
        ["sh", "-c", INSTALL_DRIVER.text()],  # noqa: S607 - sh from PATH
        env={
            "PATH": path_first(bin_dir),
            "DRIVER_MODULE": "psycopg",
            "DRIVER_PACKAGES": "psycopg==3.3.9",
            "DRIVER_DIR": str(tmp_path / "driver"),
            "INDEX_URL": index_url,
            "ARGS_FILE": str(args),
        },
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )
    return done, args.read_text()


@pytest.mark.parametrize(
    ("index_url", "given", "named"),
    [
        ("", "", "pip's configured index"),
        ("https://packages.example.lan/simple", "--index-url https://packages.example.lan/simple", None),
        ("http://mirror:8080/simple", "--index-url http://mirror:8080/simple --trusted-host mirror", None),
    ],
)
def test_the_index_is_pips_own_unless_one_is_set(tmp_path: Path, index_url: str, given: str, named: str | None) -> None:
    """Empty: pip's own configuration decides (no index named here); set: that one, a plain-HTTP one trusted."""
    done, args = _install(tmp_path, index_url)
    assert done.returncode == 1
    if given:
        assert given in args
    else:
        assert "--index-url" not in args
    assert f"could not install psycopg==3.3.9 from {named or index_url}" in done.stderr
    assert "argusai:pythonIndexUrl" in done.stderr

"""The Docker engine restarted, as a host's reboot restarts it: every container stopped, then the engine back.

Without live-restore (dockerd's default) stopping the engine stops every container; starting it again
starts the ones whose restart policy says so (`unless-stopped`, `always`), as after a reboot. Only the
engine this machine runs is restarted: by systemd where it manages `docker`, else by signalling the dockerd
of `/var/run/docker.pid` and starting it again with `scripts/docker-engine.sh`, the README's way. Every wait
has a bound. Needs root.

Nothing else may use the engine meanwhile: a test that restarts it runs alone (the `exclusive` marker).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker

PIDFILE = Path("/var/run/docker.pid")
START_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "docker-engine.sh"
#: dockerd gives every container its stop grace (10 s by default) and then stops itself.
STOP_TIMEOUT_SECONDS = 120
#: scripts/docker-engine.sh waits 90 s for a started engine; a cold one is given more here.
START_TIMEOUT_SECONDS = 300
POLL_SECONDS = 0.2
SYSTEMD_UNIT = "docker"


def _systemd_manages_docker() -> bool:
    if shutil.which("systemctl") is None:
        return False
    done = subprocess.run(  # noqa: S603 - fixed arguments
        ["systemctl", "is-active", "--quiet", SYSTEMD_UNIT],  # noqa: S607 - systemctl from PATH, as an operator
        timeout=STOP_TIMEOUT_SECONDS,
        check=False,
    )
    return done.returncode == 0


def _stop_dockerd() -> None:
    pid = int(PIDFILE.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"dockerd (pid {pid}) still running {STOP_TIMEOUT_SECONDS} s after SIGTERM")
        time.sleep(POLL_SECONDS)


def restart_engine(client: docker.DockerClient) -> float:
    """Stop the engine and start it again; return the monotonic time it answered again."""
    if _systemd_manages_docker():
        subprocess.run(  # noqa: S603 - fixed arguments
            ["systemctl", "restart", SYSTEMD_UNIT],  # noqa: S607 - as an operator
            timeout=STOP_TIMEOUT_SECONDS + START_TIMEOUT_SECONDS,
            check=True,
        )
    else:
        _stop_dockerd()
        subprocess.run(  # noqa: S603 - the project's own script
            ["bash", str(START_SCRIPT)],  # noqa: S607 - bash from PATH
            timeout=START_TIMEOUT_SECONDS,
            check=True,
            capture_output=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            client.ping()
            return time.monotonic()
        except (docker.errors.DockerException, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(POLL_SECONDS)

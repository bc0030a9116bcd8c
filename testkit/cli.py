"""The real `pulumi` CLI on a stack of its own, in a scratch directory.

A file backend and the passphrase secrets provider, so a test can import a state of the real shape and run
what an operator runs on it. The CLI comes from PULUMI_CLI, else from the build `scripts/pulumi-cli.sh`
leaves under `.tools/`. Without a language host and providers it cannot run `pulumi up`; it can export,
import, read and set config.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit.export import stack_export
from testkit.harness import PROJECT
from testkit.plan import State

ROOT = Path(__file__).resolve().parent.parent
#: One CLI call on a local file backend.
TIMEOUT_SECONDS = 120
PASSPHRASE = "argusai-test-passphrase"  # noqa: S105 - the scratch stack's own, thrown away with it
#: A cold build of the CLI at the lowest priority beside a test run.
BUILD_WAIT_SECONDS = 1800
BUILD_POLL_SECONDS = 5


def cli_path() -> str | None:
    """The CLI to run; None when it was not built.

    A build under way (`scripts/test.sh` starts one in the background) is waited for, up to
    BUILD_WAIT_SECONDS.
    """
    if os.environ.get("PULUMI_CLI"):
        return os.environ["PULUMI_CLI"]
    deadline = time.monotonic() + BUILD_WAIT_SECONDS
    while True:
        built = sorted(ROOT.glob(".tools/pulumi-*/pulumi"))
        if built:
            return str(built[-1])
        if not list(ROOT.glob(".tools/pulumi-*/building")) or time.monotonic() > deadline:
            return None
        time.sleep(BUILD_POLL_SECONDS)


@dataclass
class CliStack:
    """One stack of the project in a scratch file backend."""

    cli: str
    home: Path
    """The scratch directory: the backend, the CLI's home and a copy of the project file."""
    stack: str

    @property
    def project_dir(self) -> Path:
        """Where the project file (and the stack's config file) is."""
        return self.home / "project"

    def env(self) -> dict[str, str]:
        """What every call of the CLI (and of a script that calls it) runs with: the CLI first on PATH."""
        return {
            **os.environ,
            "PATH": f"{Path(self.cli).parent}{os.pathsep}{os.environ['PATH']}",
            "PULUMI_HOME": str(self.home / "pulumi-home"),
            "PULUMI_BACKEND_URL": (self.home / "backend").as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
        }

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`pulumi <args>` in the project directory."""
        return subprocess.run(  # noqa: S603 - the CLI under test with arguments made by the tests
            [self.cli, *args],
            cwd=self.project_dir,
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=check,
        )

    def export(self) -> dict[str, Any]:
        """`pulumi stack export`."""
        return json.loads(self.run("stack", "export").stdout)

    def import_state(self, state: State) -> None:
        """`pulumi stack import` of `state` in the engine's form, its secrets encrypted by the stack's provider."""
        providers = self.export()["deployment"]["secrets_providers"]
        deployment = stack_export(state, self.stack, PROJECT, plaintext=True, secrets_providers=providers)
        path = self.home / "import.json"
        path.write_text(json.dumps(deployment))
        self.run("stack", "import", "--file", str(path))
        path.unlink()


def new_stack(cli: str, home: Path, stack: str) -> CliStack:
    """A new stack `stack` of this project (its Pulumi.yaml) in the scratch directory `home`."""
    made = CliStack(cli, home, stack)
    made.project_dir.mkdir(parents=True)
    shutil.copy(ROOT / "Pulumi.yaml", made.project_dir / "Pulumi.yaml")
    (home / "backend").mkdir()
    made.run("stack", "init", stack)
    return made

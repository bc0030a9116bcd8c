"""The one command that takes a stack from before out of the generators whose ids show its keys, on the real CLI.

A state of the real shape (the earlier program's prod stack: `RandomBytes` whose ids are the keys in
base64, containers that depend on them) is imported into a stack of the real `pulumi` CLI; then
`scripts/keys_out_of_ids.py` runs as the README says. The values in use must end up as secret config, the
generators and every reference to them out of the state, no key in clear anywhere in the export, and the
state left must be the one the unit tests plan over (`tests/test_existing_stacks.py`).
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import plan as planning
from testkit.cli import CliStack, cli_path, new_stack
from testkit.export import clear_secrets
from testkit.legacy import COMMAND, after_the_command

pytestmark = pytest.mark.cli

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "state-prod.json"
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"
SCRIPT_TIMEOUT_SECONDS = 300


@pytest.fixture
def legacy(tmp_path: Path) -> tuple[CliStack, planning.State]:
    """The earlier program's prod stack, imported into a stack of the real CLI."""
    cli = cli_path()
    if cli is None:
        pytest.fail(
            "no pulumi CLI: scripts/pulumi-cli.sh builds it"
            " (scripts/test.sh starts it; its log: argusai-pulumi-cli.log in TMPDIR)"
        )
    stack = new_stack(cli, tmp_path, "prod")
    state = planning.State.from_json(FIXTURE.read_text())
    stack.import_state(state)
    return stack, state


def _keys_in(state: planning.State) -> dict[str, str]:
    """The keys the earlier program deployed: in the form the backend got them, from the generators' base64."""
    raw = {r.name: base64.b64decode(r.outputs["base64"]) for r in state.resources.values() if r.type == RANDOM_BYTES}
    return {
        "encryptionKey": base64.urlsafe_b64encode(raw["secrets-encryption-key"]).decode(),
        "jwtSecretKey": raw["secrets-jwt-secret-key"].hex(),
    }


def _command(stack: CliStack) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the project's own script
        [sys.executable, str(COMMAND), stack.stack],
        cwd=stack.project_dir,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
        check=False,
    )


def test_the_command_keeps_the_keys_in_use_and_leaves_no_key_in_an_id(legacy: tuple[CliStack, planning.State]) -> None:
    """Before: `pulumi stack --show-ids` prints a key. After: config holds both, the export none in clear."""
    stack, state = legacy
    keys = _keys_in(state)
    shown = stack.run("stack", "--show-ids").stdout
    assert base64.b64decode(next(r.id for r in state.resources.values() if r.type == RANDOM_BYTES))
    assert any(r.id in shown for r in state.resources.values() if r.type == RANDOM_BYTES), "the leak, before"

    done = _command(stack)
    assert done.returncode == 0, done.stderr
    for key, value in keys.items():
        assert stack.run("config", "get", f"argusai:{key}").stdout.strip() == value, key
        assert value not in done.stdout + done.stderr, "a key was printed"
    stack_file = (stack.project_dir / "Pulumi.prod.yaml").read_text()
    assert "secure:" in stack_file
    assert not any(value in stack_file for value in keys.values()), "the keys are stored encrypted"

    exported = stack.export()
    resources = exported["deployment"]["resources"]
    assert not [r for r in resources if r["type"] == RANDOM_BYTES]
    urns = {r["urn"] for r in resources}
    assert all(d in urns for r in resources for d in r.get("dependencies") or []), "no reference left dangling"
    assert clear_secrets(exported, keys.values()) == []
    assert stack.run("stack", "--show-ids").stdout.count("randomBytes") == 0

    migrated, config = after_the_command(state, "prod")
    assert config == keys
    assert urns - {r["urn"] for r in resources if r["type"].startswith(("pulumi:providers", "pulumi:pulumi"))} == set(
        migrated.resources
    ), "the state the unit tests plan over is the one the CLI holds"

    again = _command(stack)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert (stack.project_dir / "Pulumi.prod.yaml").read_text() == stack_file


def test_a_key_set_in_config_is_the_one_in_use_and_stays(legacy: tuple[CliStack, planning.State]) -> None:
    """The earlier program used a key set in config over its generator's: that key is kept, not overwritten."""
    stack, state = legacy
    operators = base64.urlsafe_b64encode(b"o" * 32).decode()
    stack.run("config", "set", "--secret", "argusai:encryptionKey", stdin=operators)
    done = _command(stack)
    assert done.returncode == 0, done.stderr
    assert "argusai:encryptionKey is set already" in done.stdout
    assert stack.run("config", "get", "argusai:encryptionKey").stdout.strip() == operators
    assert stack.run("config", "get", "argusai:jwtSecretKey").stdout.strip() == _keys_in(state)["jwtSecretKey"]
    assert not [r for r in stack.export()["deployment"]["resources"] if r["type"] == RANDOM_BYTES]

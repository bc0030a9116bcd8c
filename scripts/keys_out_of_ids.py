"""Take a stack deployed before version 2 of the secrets out of the generators whose ids show its keys.

Usage, in the project directory, logged in to the stack's backend as for `pulumi up`:

    python3 scripts/keys_out_of_ids.py <stack>

Such a stack generated ENCRYPTION_KEY and JWT_SECRET_KEY with pulumi-random's `RandomBytes`, whose id is
its value in base64: the state, every export of it and `pulumi stack --show-ids` show the keys in clear.
For each of the two generators this script, in this order:

1. keeps the value in use: when the stack's config does not set the key already (a set key is the one the
   backend got, and is left as it is), it sets `argusai:encryptionKey` (the Fernet form of the value) or
   `argusai:jwtSecretKey` (its hex) as a secret, the value passed on standard input, never as an argument;
2. removes the generator from the state, and every container's record that it depended on it (the state
   is exported, edited and imported: `pulumi state delete` refuses a resource others depend on, and would
   take the containers with it). Nothing on the Docker host is touched.

Run it again and it finds nothing left to do. Then `pulumi up` deploys the same keys as before. Needs only
the `pulumi` CLI and Python's standard library.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

NAMESPACE = "argusai"
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"
#: Each old generator's logical name, the config key its value moves to, and the form the backend got.
GENERATORS = {
    "secrets-encryption-key": ("encryptionKey", lambda raw: base64.urlsafe_b64encode(raw).decode()),
    "secrets-jwt-secret-key": ("jwtSecretKey", lambda raw: raw.hex()),
}
#: One CLI call; the CLI asks its backend (a file, object storage, Pulumi Cloud).
CLI_TIMEOUT_SECONDS = 300

#: Runs `pulumi <args>` with `stdin`; returns (exit status, stdout).
Runner = Callable[[list[str], str | None], tuple[int, str]]


@dataclass(frozen=True)
class OldGenerator:
    """One of the two old generators in a stack's state."""

    urn: str
    key: str
    """The config key its value moves to."""
    value: str
    """The value as the backend got it (a Fernet key, or hex)."""


def old_generators(exported: dict) -> list[OldGenerator]:
    """The old generators in `pulumi stack export`'s output, with the values their ids hold."""
    found = []
    for resource in exported.get("deployment", {}).get("resources") or []:
        name = resource.get("urn", "").rsplit("::", 1)[-1]
        if resource.get("type") == RANDOM_BYTES and name in GENERATORS:
            key, form = GENERATORS[name]
            found.append(OldGenerator(resource["urn"], key, form(base64.b64decode(resource["id"]))))
    return found


def cli(args: list[str], stdin: str | None) -> tuple[int, str]:
    """Run the pulumi CLI; its own messages go to the terminal."""
    done = subprocess.run(  # noqa: S603 - the pulumi CLI with arguments made here
        ["pulumi", *args],  # noqa: S607 - pulumi from PATH, as the operator runs it
        input=stdin,
        stdout=subprocess.PIPE,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )
    return done.returncode, done.stdout


def without(exported: dict[str, Any], urns: set[str]) -> dict[str, Any]:
    """The deployment with the resources `urns` gone, and every reference to them."""
    deployment = exported["deployment"]
    kept = []
    for resource in deployment.get("resources") or []:
        if resource.get("urn") in urns:
            continue
        resource = dict(resource)
        if "dependencies" in resource:
            resource["dependencies"] = [d for d in resource["dependencies"] if d not in urns]
        if "propertyDependencies" in resource:
            resource["propertyDependencies"] = {
                key: [d for d in deps if d not in urns] for key, deps in resource["propertyDependencies"].items()
            }
        kept.append(resource)
    return {**exported, "deployment": {**deployment, "resources": kept}}


def import_state(stack: str, deployment: dict[str, Any], run: Runner) -> None:
    """`pulumi stack import` of `deployment`, through a file only this user can read, removed afterwards."""
    handle, path = tempfile.mkstemp(prefix="argusai-state-", suffix=".json")
    try:
        with os.fdopen(handle, "w") as sink:
            json.dump(deployment, sink)
        if run(["stack", "import", "--stack", stack, "--file", path], None)[0] != 0:
            raise SystemExit("pulumi stack import failed: the state is as it was; the keys are in config")
    finally:
        os.remove(path)


def take_out(stack: str, run: Runner = cli) -> list[str]:
    """Do it for `stack`; return one line per thing done."""
    status, text = run(["stack", "export", "--stack", stack], None)
    if status != 0:
        raise SystemExit(f"pulumi stack export --stack {stack} failed")
    exported = json.loads(text)
    generators = old_generators(exported)
    if not generators:
        return ["no old key generator in the state: nothing to do"]
    done = []
    for generator in generators:
        config_key = f"{NAMESPACE}:{generator.key}"
        # `config get` answers the project's default too (empty): only a value counts as set.
        status, value = run(["config", "get", config_key, "--stack", stack], None)
        if status == 0 and value.strip():
            done.append(f"{config_key} is set already: the value in use, kept as it is")
            continue
        if run(["config", "set", "--secret", config_key, "--stack", stack], generator.value)[0] != 0:
            raise SystemExit(f"could not set {config_key}; the state is as it was")
        done.append(f"{config_key} set (secret) to the value in use")
    import_state(stack, without(exported, {g.urn for g in generators}), run)
    done.extend(f"removed from the state: {g.urn}" for g in generators)
    return done


def main() -> None:
    """Command line: the stack's name."""
    if len(sys.argv) != 2:  # noqa: PLR2004 - the script and the stack
        raise SystemExit(__doc__)
    for line in take_out(sys.argv[1]):
        print(line)
    print("Now run `pulumi up`: it deploys the same keys.")


if __name__ == "__main__":
    main()

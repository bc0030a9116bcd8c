"""No secret in any resource id, name, label or plain value of the stack's state.

Each stack is run under the mocks, whose ids follow the real providers (`testkit.provider.resource_id`:
a RandomBytes' id is its base64), committed as `pulumi up` would leave it, then exported in the form
`pulumi stack export` writes: every secret the stack deployed, in every encoding, must be absent from
everything that is not a secret object.
"""

from __future__ import annotations

from typing import Any

import pytest

from testkit.export import clear_secrets, deployed_secrets, encodings, stack_export
from testkit.harness import PROJECT, commit, run_program
from testkit.pki import Certificates

STACKS = [
    ("embedded", {}, None),
    ("prod", {}, None),
    ("dev", {"database": "postgres", "backupEnabled": False}, None),
    ("it", {"tlsHostnames": ["argusai.lan"]}, None),
    ("it", {}, {"backendSecretEnv": ["OPENAI_API_KEY=sk-test-0123456789"]}),
]


def _exported(stack: str, overrides: dict[str, Any], secrets: dict[str, Any] | None) -> tuple[dict, set[str]]:
    first = commit(run_program(stack, overrides, secrets))
    state = commit(run_program(stack, overrides, secrets, prior=first), first)
    return stack_export(state, stack, PROJECT), deployed_secrets(state)


@pytest.mark.parametrize(("stack", "overrides", "secrets"), STACKS)
def test_no_deployed_secret_shows_outside_a_secret(stack: str, overrides: dict[str, Any], secrets: Any) -> None:
    """Two `up`s, then the export: the keys, passwords and seeds appear only sealed."""
    exported, deployed = _exported(stack, overrides, secrets)
    assert len(deployed) >= 3, f"the keys, the password and the seed: {deployed}"
    assert clear_secrets(exported, deployed) == []


def test_the_scan_finds_a_key_in_any_encoding() -> None:
    """The scan's own check: a key put in an id in clear, as base64 or as hex, is found; sealed, it is not."""
    exported, deployed = _exported("embedded", {}, None)
    key = next(s for s in deployed if len(s) == 44 and s.endswith("="))  # the Fernet key
    resources = exported["deployment"]["resources"]
    for form in sorted(encodings(key))[:3]:
        resources[1]["id"] = form
        assert clear_secrets(exported, deployed), form
    resources[1]["id"] = "none"
    assert clear_secrets(exported, deployed) == []


def test_operator_certificate_key_stays_sealed() -> None:
    """The operator's private key is uploaded into the proxy: sealed in the state like the keys."""
    pki = Certificates.for_names("argusai.example.net")
    chain = pki.server_cert.decode() + pki.ca
    exported, deployed = _exported(
        "it",
        {"tlsHostnames": ["argusai.example.net"], "tlsCertificate": chain},
        {"tlsPrivateKey": pki.server_key.decode()},
    )
    body = "".join(pki.server_key.decode().split("-----")[2].split())
    assert clear_secrets(exported, {*deployed, body}) == []

"""A stack's state as `pulumi stack export` writes it, and what of its secrets shows in clear there.

`stack_export` serializes a :class:`~testkit.plan.State` in the engine's deployment form (version 3): every
resource with its URN, id, inputs and outputs, each secret replaced by the engine's secret object holding
ciphertext (made up here, and never derived from the value). `clear_secrets` then looks for secrets, in
every encoding a reader could undo (as deployed, the standard and url-safe base64 of their bytes, hex),
anywhere outside a secret object: ids, names, labels, plain inputs and outputs, stack outputs.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import secrets as token
import uuid
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from testkit.plan import State
from testkit.provider import CONTAINER

#: The engine's marker of a secret value in serialized state (`sig.Secret`).
SECRET_SIG = {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270"}
SIG_KEY = "4dabf18193072939515e22adb298388d"
STACK_TYPE = "pulumi:pulumi:Stack"
#: The engine version the manifest names, and its magic cookie (the hex SHA-256 of the version).
ENGINE_VERSION = "v3.276.0"
MAGIC = hashlib.sha256(ENGINE_VERSION.encode()).hexdigest()
#: A secret shorter than this is not looked for (a port, a flag): only keys, passwords and tokens are.
MIN_SECRET_LENGTH = 8


def _sealed(value: Any, plaintext: bool) -> dict[str, str]:
    """A secret as the export holds it.

    Ciphertext that says nothing of the value, or (`plaintext`, the form `pulumi stack import` encrypts)
    the value as JSON.
    """
    if plaintext:
        return {**SECRET_SIG, "plaintext": json.dumps(value)}
    return {**SECRET_SIG, "ciphertext": "v1:" + token.token_urlsafe(24)}


def _seal(value: Any, parts: list[str], plaintext: bool) -> Any:
    """`value` with the secret at `parts` sealed."""
    if not parts:
        return _sealed(value, plaintext)
    head, rest = parts[0], parts[1:]
    if isinstance(value, dict) and head in value:
        return {**value, head: _seal(value[head], rest, plaintext)}
    if isinstance(value, list) and head.isdigit() and int(head) < len(value):
        return [_seal(item, rest, plaintext) if i == int(head) else item for i, item in enumerate(value)]
    return value


def _stack_outputs(outputs: dict[str, Any], plaintext: bool) -> dict[str, Any]:
    """Stack outputs: those the engine holds as secrets (wrapped) sealed."""
    return {
        key: _sealed(value.get("value"), plaintext) if isinstance(value, dict) and SIG_KEY in value else value
        for key, value in outputs.items()
    }


def stack_export(
    state: State, stack: str, project: str, *, plaintext: bool = False, secrets_providers: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The deployment `pulumi stack export` prints for `state`: secrets sealed, or in plaintext for an import.

    Every resource refers to its package's default provider, as the engine records it. `secrets_providers`:
    the stack's own (what `pulumi stack export` of the stack names), which encrypts an import's plaintext.
    """
    stack_urn = f"urn:pulumi:{stack}::{project}::{STACK_TYPE}::{project}-{stack}"
    resources: list[dict[str, Any]] = [
        {"urn": stack_urn, "custom": False, "type": STACK_TYPE, "outputs": _stack_outputs(state.outputs, plaintext)}
    ]
    providers: dict[str, str] = {}
    for record in _dependencies_first(state):
        package = record.type.split(":", 1)[0]
        if package not in providers:
            urn = f"urn:pulumi:{stack}::{project}::pulumi:providers:{package}::default"
            provider_id = str(uuid.uuid5(uuid.NAMESPACE_URL, urn))
            resources.append({"urn": urn, "custom": True, "id": provider_id, "type": f"pulumi:providers:{package}"})
            providers[package] = f"{urn}::{provider_id}"
        sections = {"inputs": copy.deepcopy(record.inputs), "outputs": copy.deepcopy(record.outputs)}
        for path in record.secret_paths:
            section, *parts = path.split("/")
            sections[section] = _seal(sections[section], [p for p in parts if p], plaintext)
        resources.append(
            {
                "urn": record.urn,
                "custom": True,
                "id": record.id,
                "type": record.type,
                "inputs": sections["inputs"],
                "outputs": sections["outputs"],
                "parent": stack_urn,
                "provider": providers[package],
                "protect": record.protect,
                "retainOnDelete": record.retain_on_delete,
                # Reads the test kit keeps no state of (a stack reference) are left out, with what refers to them.
                "dependencies": [d for d in record.dependencies if d in state.resources],
                "initErrors": list(record.init_errors),
            }
        )
    sealed_by = {"secrets_providers": secrets_providers or {"type": "passphrase", "state": {"salt": "v1:"}}}
    return {
        "version": 3,
        "deployment": {
            **sealed_by,
            "manifest": {"time": "2026-01-01T00:00:00Z", "magic": MAGIC, "version": ENGINE_VERSION},
            "resources": resources,
        },
    }


def _dependencies_first(state: State) -> list[Any]:
    """The resources in the order the engine keeps them: each after what it depends on, otherwise as held."""
    placed: dict[str, Any] = {}
    pending = list(state.resources.values())
    while pending:
        ready = next(r for r in pending if all(d in placed or d not in state.resources for d in r.dependencies))
        placed[ready.urn] = ready
        pending.remove(ready)
    return list(placed.values())


def encodings(secret: str) -> set[str]:
    """`secret` as deployed, and its bytes (when it is base64 or hex of some) in base64, url-safe base64, hex."""
    forms = {secret}
    raw: list[bytes] = [secret.encode()]
    for decode in (base64.b64decode, base64.urlsafe_b64decode, bytes.fromhex):
        try:
            raw.append(decode(secret))
        except (binascii.Error, ValueError):
            continue
    for data in raw:
        for encoded in (base64.b64encode(data), base64.urlsafe_b64encode(data)):
            forms.add(encoded.decode())
            forms.add(encoded.decode().rstrip("="))
        forms.add(data.hex())
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _clear_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string outside a secret object, with where it is."""
    if isinstance(value, dict):
        if SIG_KEY in value:
            return
        for key, item in value.items():
            yield f"{path}/{key}", str(key)
            yield from _clear_strings(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _clear_strings(item, f"{path}/{index}")
    elif value is not None:
        yield path, str(value)


#: Environment variables whose value is a secret the program deploys.
SECRET_ENV = ("ENCRYPTION_KEY", "JWT_SECRET_KEY", "POSTGRES_PASSWORD", "PGPASSWORD")
#: Generator outputs that are the secret itself.
GENERATED = ("result", "base64", "hex", "b64Url", "b64Std")


def deployed_secrets(state: State) -> set[str]:
    """Every secret the stack deployed: what the generators made, and the keys and passwords containers got."""
    found: set[str] = set()
    for record in state.resources.values():
        found.update(str(record.outputs[key]) for key in GENERATED if record.outputs.get(key))
        if record.type != CONTAINER:
            continue
        for entry in record.inputs.get("envs") or []:
            name, _, value = str(entry).partition("=")
            if name in SECRET_ENV and value:
                found.add(value)
            elif name == "DATABASE_URL" and urlsplit(value).password:
                found.add(unquote(urlsplit(value).password or ""))
    return found


def clear_secrets(exported: dict[str, Any], secrets: Iterable[str]) -> list[str]:
    """Where any of `secrets`, in any encoding, shows outside a secret object (empty: nowhere)."""
    forms = {form: secret[:4] for secret in secrets for form in encodings(secret)}
    found = []
    for resource in exported["deployment"]["resources"]:
        for path, text in _clear_strings(resource, resource["urn"]):
            found.extend(f"{path} holds a secret starting {start!r}" for form, start in forms.items() if form in text)
    return found

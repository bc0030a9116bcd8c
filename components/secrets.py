"""Secrets the deployment depends on: generated once with pulumi-random, then kept in the stack state.

Creates:
- `<name>-postgres-password`: random.RandomPassword, 40 letters and digits (stacks from before: 32; its
  length is ignored after creation, so it tells which scheme made the stack: see "Stacks from before").
- `<name>-postgres-password-r<N>` for N = 1 .. `postgresPasswordRotation`: one more generator per rotation of
  the generated password; the last one is the password in use. The earlier ones stay declared, so a
  rotation never deletes a protected resource.
- `<name>-key-seed`: random.RandomPassword, 64 letters and digits (381 bits). ENCRYPTION_KEY and
  JWT_SECRET_KEY are derived from it with HMAC-SHA256, each under its own context: the Fernet key is the
  url-safe base64 of one 32-byte HMAC, the JWT key the hex of another.
- `<name>-admin-password`: random.RandomPassword, 24 letters and digits: the first admin's password, set by
  the `admin-seed` step through the release's own code on a database with no user yet (`adminPassword`).
- `<name>-in-use`: random.RandomShuffle holding the fingerprints of the values this stack first deployed.
  Its inputs are ignored after creation, so the engine hands back what it holds on every later run.

No secret, and nothing from which one follows, is in any resource id, name or label: a RandomPassword's
id is `none` and a RandomShuffle's `-` (pulumi-random's `RandomBytes` and `RandomId` take their value as
their id, which Pulumi never encrypts, so they are not used).

The generators are declared whether or not the operator supplies a value, so supplying one later never
deletes a protected resource; a supplied value wins. Every value leaves this component as
`pulumi.Output.secret`. PostgreSQL applies POSTGRES_PASSWORD only to an empty data directory and a new
ENCRYPTION_KEY makes stored camera credentials unreadable, so a key that differs from the one the stack
first deployed would lock the backend out of stored credentials: it is refused, naming the key, before any
container that uses it is created. The PostgreSQL password is not refused: the stack's own server takes a
new one with `ALTER ROLE` before anything else uses it (`components/database/role_password.py`), so a new
value is a rotation. The comparison reads what the engine holds for `<name>-in-use`, never the stack's own
checkpoint (which the same `up` is writing). Changing a secret in use is a rotation, a database
operation of its own.

Stacks from before: the program once generated ENCRYPTION_KEY and JWT_SECRET_KEY with `RandomBytes`, whose
ids hold them in clear. Such a stack is recognised by its PostgreSQL password, 32 characters long (the
password generator's length is ignored after creation, so the engine hands back the stack's own; the
stack's checkpoint is never read). Its keys stay the ones in use: unless both are supplied in config, the
program stops before anything that uses a key is created and names the one command
(`scripts/keys_out_of_ids.py`) that moves them into the stack's config as secrets and removes the old
generators from the state.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random as random

from components.settings import ConfigError

PASSWORD_LENGTH = 40
#: The first admin's password: letters and digits, easy to type on a phone, 143 bits.
ADMIN_PASSWORD_LENGTH = 24
#: The length the program gave passwords before its keys left the ids: how a stack from before shows itself.
LEGACY_PASSWORD_LENGTH = 32
#: Letters and digits: log2(62) = 5.95 bits each, 381 bits in all.
SEED_LENGTH = 64
#: The stack output holding the secrets' fingerprints (secret itself).
FINGERPRINTS_OUTPUT = "secretFingerprints"
# Config key of each secret, as the error messages and the fingerprints name it.
POSTGRES_PASSWORD_KEY = "postgresPassword"  # noqa: S105 - a config key's name, not a password
ENCRYPTION_KEY_KEY = "encryptionKey"
JWT_SECRET_KEY_KEY = "jwtSecretKey"  # noqa: S105 - a config key's name, not a secret
#: The HMAC context of each derived key, formatted with its version (1 + the key's rotations): a new
#: context is a new, unrelated key.
DERIVATION_CONTEXT = "argusai {key} v{version}"
#: The one command that takes a stack from before out of the old generators (README, Upgrading).
LEGACY_COMMAND = "python3 scripts/keys_out_of_ids.py"


def derive_key(seed: str, key: str, rotation: int = 0) -> bytes:
    """The 32 bytes of `key` (encryptionKey or jwtSecretKey) after `rotation` rotations, under its own context."""
    context = DERIVATION_CONTEXT.format(key=key, version=rotation + 1).encode()
    return hmac.new(seed.encode(), context, hashlib.sha256).digest()


def fernet_key(seed: str, rotation: int = 0) -> str:
    """ENCRYPTION_KEY: url-safe base64 of 32 derived bytes, the form Fernet expects."""
    return base64.urlsafe_b64encode(derive_key(seed, ENCRYPTION_KEY_KEY, rotation)).decode()


def jwt_key(seed: str, rotation: int = 0) -> str:
    """JWT_SECRET_KEY: 64 hex characters of 32 derived bytes."""
    return derive_key(seed, JWT_SECRET_KEY_KEY, rotation).hex()


def fingerprint(key: str, value: str) -> str:
    """A one-way fingerprint of a secret, enough to tell whether it changed (kept secret all the same)."""
    return hashlib.sha256(f"argusai:{key}\0{value}".encode()).hexdigest()


def _unchanged(key: str, value: str, first: Any) -> str:
    """Return `value`, or refuse it when the stack first deployed another value for `key`."""
    before = first.get(key) if isinstance(first, dict) else None
    if before and before != fingerprint(key, value):
        raise ConfigError(
            key,
            "differs from the value this stack last deployed; the data was written with the old one, so the "
            "backend would be locked out of it. Unset the key to keep the value in use (or set it to that "
            "value). To rotate it, set argusai:encryptionKeyPrevious to the key in use as well: the stored "
            "credentials are then re-encrypted (README: Rotating secrets)",
        )
    return value


def _held(results: Any) -> dict[str, str] | None:
    """The fingerprints `<name>-in-use` holds (its one result, JSON), None while unknown."""
    if not results:
        return None
    return json.loads(results[0])


def _from_before(password: str, supplied: bool) -> None:
    """Stop a stack from before unless its keys are supplied: its generators hold them in clear ids."""
    if len(password) != LEGACY_PASSWORD_LENGTH or supplied:
        return
    raise ConfigError(
        ENCRYPTION_KEY_KEY,
        "and argusai:jwtSecretKey of this stack are still kept in generators whose ids show them in clear "
        "(stacks deployed before this version). Nothing was changed. Run, once, in this project: "
        f"`{LEGACY_COMMAND} <stack>`; it keeps the values in use as secret config and removes the old "
        "generators from the state. Then run `pulumi up` again (README: Upgrading)",
    )


@dataclass(frozen=True)
class AppSecretsArgs:
    """Inputs of AppSecrets."""

    postgres_password: pulumi.Output[str] | None
    """Operator-supplied password, or None to use the generated one."""
    postgres_password_rotation: int
    """How many times the generated password was rotated (the generator in use is the last of them)."""
    encryption_key: pulumi.Output[str] | None
    """Operator-supplied Fernet key, or None to derive one from the seed."""
    jwt_secret_key: pulumi.Output[str] | None
    """Operator-supplied JWT signing key, or None to derive one from the seed."""
    encryption_key_previous: pulumi.Output[str] | None
    """The Fernet key the data is encrypted with before a rotation, or None (see `encryption_key_rotation`)."""
    encryption_key_rotation: int
    """Rotations of the derived Fernet key; from the first on, the one before is the previous key."""
    jwt_secret_key_rotation: int
    """Rotations of the derived JWT signing key."""
    protect: bool
    """Protect the generators and the record of the values in use from deletion and replacement."""
    seed_admin: bool
    """Whether the first admin gets `admin_password` (the release's steps run: `schemaGate`)."""


class AppSecrets(pulumi.ComponentResource):
    """The PostgreSQL password, ENCRYPTION_KEY and JWT_SECRET_KEY, supplied or generated, never changed."""

    postgres_password: pulumi.Output[str]
    encryption_key: pulumi.Output[str]
    jwt_secret_key: pulumi.Output[str]
    fingerprints: pulumi.Output[dict[str, str]]
    """Fingerprint of each secret in use, for the stack output `secretFingerprints`."""
    admin_password: pulumi.Output[str]
    """The password the first admin gets on a stack created by this version (secret)."""
    first_admin_password: pulumi.Output[str | None]
    """The same, or None where no seed gives it to the first admin (a stack from before, whose first admin the
    release made with a password it printed in its log; `schemaGate: false`): `adminPassword` (secret)."""
    record: random.RandomShuffle
    """The record of the values in use: declared once every value is checked (a container that uses no
    secret but must not start on a stack the checks stop depends on it)."""

    encryption_key_previous: pulumi.Output[str] | None
    """The Fernet key the data was under before the last rotation (secret), or None when none is named."""

    @property
    def app_env(self) -> list[pulumi.Output[str]]:
        """The release's ENCRYPTION_KEY (and its ENCRYPTION_KEY_PREVIOUS) and JWT_SECRET_KEY as NAME=value entries.

        The previous key stays with the backend: a credential the old backend wrote while the rotation ran
        (under the old key) still decrypts.
        """
        previous = (
            []
            if self.encryption_key_previous is None
            else [pulumi.Output.concat("ENCRYPTION_KEY_PREVIOUS=", self.encryption_key_previous)]
        )
        return [
            pulumi.Output.concat("ENCRYPTION_KEY=", self.encryption_key),
            *previous,
            pulumi.Output.concat("JWT_SECRET_KEY=", self.jwt_secret_key),
        ]

    @property
    def key_fingerprint_env(self) -> pulumi.Output[str]:
        """FOR_ENCRYPTION_KEY=<fingerprint> (secret): the pre-upgrade backup runs again for a new key."""
        return pulumi.Output.secret(
            self.encryption_key.apply(lambda key: f"FOR_ENCRYPTION_KEY={fingerprint(ENCRYPTION_KEY_KEY, key)}")
        )

    def __init__(self, name: str, args: AppSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare the generators and check every value against the values the stack first deployed."""
        super().__init__("argusai:secrets:AppSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, protect=args.protect)

        # The password is generated even in SQLite mode, so switching modes never deletes a protected
        # resource and a later switch to PostgreSQL finds it ready. Its length is ignored after creation: the
        # engine hands back the password the stack was created with, so a stack from before shows itself.
        password = random.RandomPassword(
            f"{name}-postgres-password",
            length=PASSWORD_LENGTH,
            special=False,
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(ignore_changes=["length"])),
        )
        # One generator per rotation, all kept: dropping one would delete a protected resource.
        generated_password = password.result
        for rotation in range(1, args.postgres_password_rotation + 1):
            generated_password = random.RandomPassword(
                f"{name}-postgres-password-r{rotation}", length=PASSWORD_LENGTH, special=False, opts=child
            ).result
        seed = random.RandomPassword(f"{name}-key-seed", length=SEED_LENGTH, special=False, opts=child).result
        self.admin_password = pulumi.Output.secret(
            random.RandomPassword(
                f"{name}-admin-password", length=ADMIN_PASSWORD_LENGTH, special=False, opts=child
            ).result
        )
        from_before = password.result.apply(lambda result: len(result) == LEGACY_PASSWORD_LENGTH)
        self.first_admin_password = pulumi.Output.secret(
            pulumi.Output.all(self.admin_password, from_before).apply(
                lambda v: v[0] if args.seed_admin and not v[1] else None
            )
        )
        keys_supplied = args.encryption_key is not None and args.jwt_secret_key is not None
        # Every key waits for the check of a stack from before: nothing that uses one is created first.
        checked = password.result.apply(lambda result: _from_before(result, keys_supplied))
        generated_key = pulumi.Output.all(seed, checked).apply(lambda v: fernet_key(v[0], args.encryption_key_rotation))
        generated_jwt = pulumi.Output.all(seed, checked).apply(lambda v: jwt_key(v[0], args.jwt_secret_key_rotation))
        # The key the data is under before a rotation: the operator's, or the derived one before the last rotation.
        previous = args.encryption_key_previous
        if previous is None and args.encryption_key_rotation > 0:
            previous = pulumi.Output.all(seed, checked).apply(
                lambda v: fernet_key(v[0], args.encryption_key_rotation - 1)
            )
        self.encryption_key_previous = pulumi.Output.secret(previous) if previous is not None else None

        def chosen(supplied: pulumi.Output[str] | None, generated: pulumi.Output[str]) -> pulumi.Output[str]:
            value = supplied if supplied is not None else generated
            return pulumi.Output.all(value, checked).apply(lambda v: v[0])

        candidates = {
            POSTGRES_PASSWORD_KEY: chosen(args.postgres_password, generated_password),
            ENCRYPTION_KEY_KEY: chosen(args.encryption_key, generated_key),
            JWT_SECRET_KEY_KEY: chosen(args.jwt_secret_key, generated_jwt),
        }
        prints = pulumi.Output.all(*candidates.values()).apply(
            lambda values: {key: fingerprint(key, value) for key, value in zip(candidates, values, strict=True)}
        )
        # Born with the fingerprints of the first values; later runs get those back, whatever they pass.
        in_use = random.RandomShuffle(
            f"{name}-in-use",
            inputs=[pulumi.Output.secret(prints.apply(lambda p: json.dumps(p, sort_keys=True)))],
            result_count=1,
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(ignore_changes=["inputs"], additional_secret_outputs=["results"])
            ),
        )
        self.record = in_use
        first = in_use.results.apply(_held)

        def in_use_value(key: str) -> pulumi.Output[str]:
            return pulumi.Output.secret(pulumi.Output.all(candidates[key], first).apply(lambda v: _unchanged(key, *v)))

        # A new password is a rotation the server takes first, not a lock-out: it is not held to the record.
        self.postgres_password = pulumi.Output.secret(
            pulumi.Output.all(candidates[POSTGRES_PASSWORD_KEY], first).apply(lambda v: v[0])
        )
        # With the key in use named as the previous one, a new key is a rotation: the `key-rotation` step proves
        # it on the data (every stored credential must decrypt with one of the two), so it is not held to the
        # record. A new JWT signing key locks no data out (everyone signs in again): never held to it either.
        self.encryption_key = (
            in_use_value(ENCRYPTION_KEY_KEY)
            if previous is None
            else pulumi.Output.secret(pulumi.Output.all(candidates[ENCRYPTION_KEY_KEY], first).apply(lambda v: v[0]))
        )
        self.jwt_secret_key = pulumi.Output.secret(
            pulumi.Output.all(candidates[JWT_SECRET_KEY_KEY], first).apply(lambda v: v[0])
        )
        self.fingerprints = pulumi.Output.secret(
            pulumi.Output.all(prints, self.postgres_password, self.encryption_key, self.jwt_secret_key).apply(
                lambda v: v[0]
            )
        )
        self.register_outputs(
            {
                "postgres_password": self.postgres_password,
                "encryption_key": self.encryption_key,
                "jwt_secret_key": self.jwt_secret_key,
            }
        )

"""Secrets the deployment depends on: generated once with pulumi-random, then kept in the stack state.

Creates:
- `<name>-postgres-password`: random.RandomPassword, 32 letters and digits.
- `<name>-encryption-key`: random.RandomBytes, 32 bytes, exposed as a url-safe base64 Fernet key.
- `<name>-jwt-secret-key`: random.RandomBytes, 32 bytes, exposed as 64 hex characters.
- `<name>-last-deployment`: a reference to this same stack, read for the fingerprints of the secrets its
  last `pulumi up` deployed.

The generators are declared whether or not the operator supplies a value, so supplying one later never
deletes a protected resource; a supplied value wins. Every value leaves this component as
`pulumi.Output.secret`. PostgreSQL applies POSTGRES_PASSWORD only to an empty data directory and a new
ENCRYPTION_KEY makes stored camera credentials unreadable, so a value that differs from the one the stack
last deployed would lock the backend out: it is refused, naming the key, before any container that uses
it is declared. (Changing a secret in use is a rotation, a database operation of its own.)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_random as random

from components.settings import ConfigError

PASSWORD_LENGTH = 32
KEY_BYTES = 32
#: The stack output holding the secrets' fingerprints (secret itself).
FINGERPRINTS_OUTPUT = "secretFingerprints"
# Config key of each secret, as the error messages and the fingerprints name it.
POSTGRES_PASSWORD_KEY = "postgresPassword"  # noqa: S105 - a config key's name, not a password
ENCRYPTION_KEY_KEY = "encryptionKey"
JWT_SECRET_KEY_KEY = "jwtSecretKey"  # noqa: S105 - a config key's name, not a secret


def to_fernet_key(standard_b64: str) -> str:
    """Turn standard base64 of 32 bytes into the url-safe alphabet Fernet expects."""
    return standard_b64.replace("+", "-").replace("/", "_")


def fingerprint(key: str, value: str) -> str:
    """A one-way fingerprint of a secret, enough to tell whether it changed (kept secret all the same)."""
    return hashlib.sha256(f"argusai:{key}\0{value}".encode()).hexdigest()


def _unchanged(key: str, value: str, previous: Any) -> str:
    """Return `value`, or refuse it when the stack's last deployment used another value for `key`."""
    before = previous.get(key) if isinstance(previous, dict) else None
    if before and before != fingerprint(key, value):
        raise ConfigError(
            key,
            "differs from the value this stack last deployed; the data was written with the old one, so the "
            "backend would be locked out of it. Unset the key to keep the value in use (or set it to that "
            "value); changing a secret in use is a rotation, not a config change (see the README, Secrets)",
        )
    return value


@dataclass(frozen=True)
class AppSecretsArgs:
    """Inputs of AppSecrets."""

    postgres_password: pulumi.Output[str] | None
    """Operator-supplied password, or None to use the generated one."""
    encryption_key: pulumi.Output[str] | None
    """Operator-supplied Fernet key, or None to use the generated one."""
    jwt_secret_key: pulumi.Output[str] | None
    """Operator-supplied JWT signing key, or None to use the generated one."""
    protect: bool
    """Protect the generators from deletion and replacement."""


class AppSecrets(pulumi.ComponentResource):
    """The PostgreSQL password, ENCRYPTION_KEY and JWT_SECRET_KEY, supplied or generated, never changed."""

    postgres_password: pulumi.Output[str]
    encryption_key: pulumi.Output[str]
    jwt_secret_key: pulumi.Output[str]
    fingerprints: pulumi.Output[dict[str, str]]
    """Fingerprint of each secret in use, for the stack output `secretFingerprints`."""
    last_deployment: pulumi.StackReference
    """This stack's own outputs from its last completed `pulumi up` (none before the first)."""

    @property
    def app_env(self) -> list[pulumi.Output[str]]:
        """The release's ENCRYPTION_KEY and JWT_SECRET_KEY as NAME=value entries (secret)."""
        return [
            pulumi.Output.concat("ENCRYPTION_KEY=", self.encryption_key),
            pulumi.Output.concat("JWT_SECRET_KEY=", self.jwt_secret_key),
        ]

    def __init__(self, name: str, args: AppSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare the generators and check every value against the stack's last deployment."""
        super().__init__("argusai:secrets:AppSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, protect=args.protect)

        # The password is generated even in SQLite mode, so switching modes never deletes a protected
        # resource and a later switch to PostgreSQL finds it ready.
        generated_password = random.RandomPassword(
            f"{name}-postgres-password", length=PASSWORD_LENGTH, special=False, opts=child
        ).result
        generated_key = random.RandomBytes(f"{name}-encryption-key", length=KEY_BYTES, opts=child).base64.apply(
            to_fernet_key
        )
        generated_jwt = random.RandomBytes(f"{name}-jwt-secret-key", length=KEY_BYTES, opts=child).hex

        # This stack's own outputs from its last completed `pulumi up` (none before the first).
        last = pulumi.StackReference(
            f"{name}-last-deployment",
            stack_name=f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}",
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.last_deployment = last
        previous = last.get_output(FINGERPRINTS_OUTPUT)

        def in_use(key: str, supplied: pulumi.Output[str] | None, generated: pulumi.Output[str]) -> pulumi.Output[str]:
            value = supplied if supplied is not None else generated
            return pulumi.Output.secret(pulumi.Output.all(value, previous).apply(lambda v: _unchanged(key, *v)))

        self.postgres_password = in_use(POSTGRES_PASSWORD_KEY, args.postgres_password, generated_password)
        self.encryption_key = in_use(ENCRYPTION_KEY_KEY, args.encryption_key, generated_key)
        self.jwt_secret_key = in_use(JWT_SECRET_KEY_KEY, args.jwt_secret_key, generated_jwt)
        self.fingerprints = pulumi.Output.secret(
            pulumi.Output.all(self.postgres_password, self.encryption_key, self.jwt_secret_key).apply(
                lambda values: {
                    key: fingerprint(key, value)
                    for key, value in zip(
                        (POSTGRES_PASSWORD_KEY, ENCRYPTION_KEY_KEY, JWT_SECRET_KEY_KEY), values, strict=True
                    )
                }
            )
        )
        self.register_outputs(
            {
                "postgres_password": self.postgres_password,
                "encryption_key": self.encryption_key,
                "jwt_secret_key": self.jwt_secret_key,
            }
        )

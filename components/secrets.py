"""Secrets the deployment depends on: generated once with pulumi-random, then kept in the stack state.

Creates (each only when the operator did not supply the value):
- `<name>-postgres-password`: random.RandomPassword, 32 letters and digits.
- `<name>-encryption-key`: random.RandomBytes, 32 bytes, exposed as a url-safe base64 Fernet key.
- `<name>-jwt-secret-key`: random.RandomBytes, 32 bytes, exposed as 64 hex characters.

Every value leaves this component as `pulumi.Output.secret`. With `protect`, the generators cannot be
deleted or replaced: PostgreSQL applies POSTGRES_PASSWORD only to an empty data directory and a new
ENCRYPTION_KEY makes stored camera credentials unreadable, so a new value would lock the backend out.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random

PASSWORD_LENGTH = 32
KEY_BYTES = 32


def to_fernet_key(standard_b64: str) -> str:
    """Turn standard base64 of 32 bytes into the url-safe alphabet Fernet expects."""
    return standard_b64.replace("+", "-").replace("/", "_")


@dataclass(frozen=True)
class AppSecretsArgs:
    """Inputs of AppSecrets."""

    postgres_password: pulumi.Output[str] | None
    """Operator-supplied password, or None to generate one."""
    encryption_key: pulumi.Output[str] | None
    """Operator-supplied Fernet key, or None to generate one."""
    jwt_secret_key: pulumi.Output[str] | None
    """Operator-supplied JWT signing key, or None to generate one."""
    protect: bool
    """Protect generated values from deletion and replacement."""


class AppSecrets(pulumi.ComponentResource):
    """The PostgreSQL password, ENCRYPTION_KEY and JWT_SECRET_KEY, supplied or generated."""

    postgres_password: pulumi.Output[str]
    encryption_key: pulumi.Output[str]
    jwt_secret_key: pulumi.Output[str]

    def __init__(self, name: str, args: AppSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare a generator for each value the operator did not supply."""
        super().__init__("argusai:secrets:AppSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, protect=args.protect)

        # The password is generated even in SQLite mode, so switching modes never deletes a protected
        # resource and a later switch to PostgreSQL finds it ready.
        if args.postgres_password is not None:
            password = args.postgres_password
        else:
            password = random.RandomPassword(
                f"{name}-postgres-password", length=PASSWORD_LENGTH, special=False, opts=child
            ).result
        self.postgres_password = pulumi.Output.secret(password)

        if args.encryption_key is not None:
            key = args.encryption_key
        else:
            key = random.RandomBytes(f"{name}-encryption-key", length=KEY_BYTES, opts=child).base64.apply(to_fernet_key)
        self.encryption_key = pulumi.Output.secret(key)

        if args.jwt_secret_key is not None:
            jwt = args.jwt_secret_key
        else:
            jwt = random.RandomBytes(f"{name}-jwt-secret-key", length=KEY_BYTES, opts=child).hex
        self.jwt_secret_key = pulumi.Output.secret(jwt)

        self.register_outputs(
            {
                "postgres_password": self.postgres_password,
                "encryption_key": self.encryption_key,
                "jwt_secret_key": self.jwt_secret_key,
            }
        )

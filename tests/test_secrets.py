"""Generated secrets: created once, kept, protected, and secret wherever they flow."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pulumi
from cryptography.fernet import Fernet

from components.secrets import (
    ENCRYPTION_KEY_KEY,
    JWT_SECRET_KEY_KEY,
    PASSWORD_LENGTH,
    AppSecrets,
    AppSecretsArgs,
    derive_key,
    fernet_key,
    jwt_key,
)
from testkit.harness import resolve, run_components
from testkit.provider import RANDOM_PASSWORD, RANDOM_SHUFFLE


def _generated(protect: bool = True) -> tuple[AppSecrets, object]:
    return run_components(
        lambda: AppSecrets(
            "s",
            AppSecretsArgs(
                postgres_password=None,
                postgres_password_rotation=0,
                encryption_key_previous=None,
                encryption_key_rotation=0,
                jwt_secret_key_rotation=0,
                encryption_key=None,
                jwt_secret_key=None,
                protect=protect,
                seed_admin=True,
            ),
        )
    )


def test_generates_the_password_the_seed_and_the_record_protected() -> None:
    """With nothing supplied: the passwords, the seed of the keys and the record of what is in use, all protected."""
    _, deployment = _generated()
    kinds = sorted(r.type for r in deployment.registrations if r.type.startswith("random:"))
    assert kinds == [RANDOM_PASSWORD, RANDOM_PASSWORD, RANDOM_PASSWORD, RANDOM_SHUFFLE]
    for registration in deployment.registrations:
        if registration.type.startswith("random:"):
            assert registration.protect, registration.name
            assert registration.parent.endswith("argusai:secrets:AppSecrets::s")


def test_protection_can_be_turned_off() -> None:
    """`protectData: false` (the dev stack) leaves them unprotected."""
    _, deployment = _generated(protect=False)
    assert not any(r.protect for r in deployment.registrations)


def test_generated_values_are_secret_and_valid() -> None:
    """ENCRYPTION_KEY is a real Fernet key; the password is long; all three are secret."""
    secrets, _ = _generated()
    key = resolve(secrets.encryption_key)
    password = resolve(secrets.postgres_password)
    jwt = resolve(secrets.jwt_secret_key)
    assert key.secret
    assert password.secret
    assert jwt.secret
    token = Fernet(key.value).encrypt(b"camera password")
    assert Fernet(key.value).decrypt(token) == b"camera password"
    assert len(password.value) == PASSWORD_LENGTH == 40
    assert password.value.isalnum()
    assert len(jwt.value) == 64


def test_supplied_values_are_used_and_nothing_generated() -> None:
    """Operator-supplied values win and no generator is declared."""
    supplied = base64.urlsafe_b64encode(b"k" * 32).decode()
    secrets, deployment = run_components(
        lambda: AppSecrets(
            "s",
            AppSecretsArgs(
                postgres_password=pulumi.Output.secret("operator-pass"),
                postgres_password_rotation=0,
                encryption_key_previous=None,
                encryption_key_rotation=0,
                jwt_secret_key_rotation=0,
                encryption_key=pulumi.Output.secret(supplied),
                jwt_secret_key=pulumi.Output.secret("j" * 40),
                protect=True,
                seed_admin=True,
            ),
        )
    )
    # The generators stay declared (supplying a value later never deletes a protected resource), unused.
    assert len([r for r in deployment.registrations if r.type.startswith("random:")]) == 4
    assert resolve(secrets.postgres_password).value == "operator-pass"
    assert resolve(secrets.encryption_key).value == supplied


def test_keys_are_derived_each_under_its_own_context() -> None:
    """Each key is 32 bytes of HMAC-SHA256 of the seed under its own context: unrelated keys, same seed."""
    seed = "s" * 64
    assert len(derive_key(seed, ENCRYPTION_KEY_KEY)) == len(derive_key(seed, JWT_SECRET_KEY_KEY)) == 32
    assert derive_key(seed, ENCRYPTION_KEY_KEY) != derive_key(seed, JWT_SECRET_KEY_KEY)
    assert fernet_key(seed) == base64.urlsafe_b64encode(derive_key(seed, ENCRYPTION_KEY_KEY)).decode()


def test_a_rotation_derives_a_new_unrelated_key_and_the_first_stays_the_one_stacks_have() -> None:
    """Rotation n derives under "v<n+1>": rotation 0 is the context every stack so far was made with."""
    seed = "s" * 64
    first = hmac.new(seed.encode(), b"argusai encryptionKey v1", hashlib.sha256).digest()
    assert derive_key(seed, ENCRYPTION_KEY_KEY) == first
    assert len({fernet_key(seed, n) for n in range(3)}) == 3
    assert len({jwt_key(seed, n) for n in range(3)}) == 3
    assert jwt_key(seed) == derive_key(seed, JWT_SECRET_KEY_KEY).hex()
    assert fernet_key(seed) != fernet_key("t" * 64)
    Fernet(fernet_key(seed))


def test_the_seed_carries_at_least_256_bits() -> None:
    """64 letters and digits: 381 bits, from a generator whose id (`none`) says nothing of it."""
    _, deployment = _generated()
    (seed,) = [r for r in deployment.registrations if r.name == "s-key-seed"]
    assert seed.type == RANDOM_PASSWORD
    assert seed.plain("length") == 64
    assert seed.plain("special") is False
    assert seed.id == "none"

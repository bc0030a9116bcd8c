"""Generated secrets: created once, kept, protected, and secret wherever they flow."""

from __future__ import annotations

import base64

import pulumi
from cryptography.fernet import Fernet

from components.secrets import AppSecrets, AppSecretsArgs, to_fernet_key
from testkit.harness import resolve, run_components

RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
RANDOM_BYTES = "random:index/randomBytes:RandomBytes"


def _generated(protect: bool = True) -> tuple[AppSecrets, object]:
    return run_components(
        lambda: AppSecrets(
            "s", AppSecretsArgs(postgres_password=None, encryption_key=None, jwt_secret_key=None, protect=protect)
        )
    )


def test_generates_all_three_protected() -> None:
    """With nothing supplied, one generator each, protected from deletion and replacement."""
    _, deployment = _generated()
    kinds = sorted(r.type for r in deployment.registrations if r.type.startswith("random:"))
    assert kinds == [RANDOM_BYTES, RANDOM_BYTES, RANDOM_PASSWORD]
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
    assert len(password.value) == 32
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
                encryption_key=pulumi.Output.secret(supplied),
                jwt_secret_key=pulumi.Output.secret("j" * 40),
                protect=True,
            ),
        )
    )
    # The generators stay declared (supplying a value later never deletes a protected resource), unused.
    assert len([r for r in deployment.registrations if r.type.startswith("random:")]) == 3
    assert resolve(secrets.postgres_password).value == "operator-pass"
    assert resolve(secrets.encryption_key).value == supplied


def test_fernet_conversion_uses_url_safe_alphabet() -> None:
    """Standard base64 with + and / becomes the url-safe form Fernet requires."""
    standard = base64.b64encode(b"\xfb\xff" * 16).decode()
    assert "+" in standard or "/" in standard
    Fernet(to_fernet_key(standard))

"""Config validation: every bad value stops the program, names its key, and declares nothing."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from components.settings import ConfigError, fernet_key_problem
from testkit.harness import layered_config, project_file, run_program

VALID_FERNET = base64.urlsafe_b64encode(bytes(range(32))).decode()


def _fails(overrides: dict[str, Any] | None = None, secrets: dict[str, Any] | None = None, *, match: str) -> str:
    """Run the program with bad config; assert it fails naming the key and registers nothing."""
    with pytest.raises(ConfigError, match=match) as info:
        run_program("embedded", overrides, secrets)
    assert info.value.registrations == [], "resources were declared before config was validated"
    return str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("database", "mysql", r"argusai:database' must be one of sqlite, postgres, external; got 'mysql'"),
        ("database", "", r"argusai:database' must not be empty"),
        ("backendPort", 0, r"argusai:backendPort' must be an integer from 1 to 65535; got 0"),
        ("backendPort", 70000, r"argusai:backendPort' must be an integer from 1 to 65535; got 70000"),
        ("backendPort", "80a", r"argusai:backendPort' must be an integer from 1 to 65535; got '80a'"),
        ("frontendPort", -1, r"argusai:frontendPort' must be an integer from 1 to 65535"),
        ("frontendPort", 8000, r"argusai:frontendPort' must differ from argusai:backendPort \(8000\)"),
        ("postgresUser", "", r"argusai:postgresUser' must not be empty"),
        ("postgresUser", "Argus", r"argusai:postgresUser' must be a PostgreSQL identifier"),
        ("postgresUser", "1user", r"argusai:postgresUser' must be a PostgreSQL identifier"),
        ("postgresUser", "pg_admin", r"argusai:postgresUser' must not start with 'pg_'"),
        ("postgresDb", "x" * 64, r"argusai:postgresDb' must be a PostgreSQL identifier.*at most 63"),
        ("postgresDb", "my-db", r"argusai:postgresDb' must be a PostgreSQL identifier"),
        ("backendImage", "", r"argusai:backendImage' must not be empty"),
        ("backendImage", "not an image!", r"argusai:backendImage' must be an image reference"),
        ("postgresImage", "Postgres:16", r"argusai:postgresImage' must be an image reference"),
        ("frontendImage", "front end", r"argusai:frontendImage' must be an image reference"),
        ("bindAddress", "localhost", r"argusai:bindAddress' must be an IPv4 or IPv6 address"),
        ("bindAddress", "", r"argusai:bindAddress' must not be empty"),
        ("namePrefix", "Argus AI", r"argusai:namePrefix' must be lower-case letters"),
        ("protectData", "yes", r"argusai:protectData' must be true or false; got 'yes'"),
        ("logLevel", "verbose", r"argusai:logLevel' must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("postgresDriver", "asyncpg", r"argusai:postgresDriver' must be one of psycopg, psycopg2"),
        ("cookieSameSite", "sometimes", r"argusai:cookieSameSite' must be one of lax, strict, none"),
        ("cookieSameSite", "none", r"argusai:cookieSameSite' may be 'none' only with argusai:cookieSecure true"),
        ("corsOrigins", "ftp://files.lan", r"argusai:corsOrigins' must list http\(s\) origins"),
        ("backendEnv", "LOG=1", r"argusai:backendEnv' must be a list of strings"),
        ("backendEnv", ["no-equals-sign"], r"argusai:backendEnv' entries must look like NAME=value"),
        ("backendEnv", ["DATABASE_URL=sqlite://"], r"argusai:backendEnv' must not set DATABASE_URL"),
        ("backupIntervalHours", 0, r"argusai:backupIntervalHours' must be an integer from 1 to 720"),
        ("backupKeep", 0, r"argusai:backupKeep' must be an integer from 1 to 1000"),
        ("backupEnabled", "maybe", r"argusai:backupEnabled' must be true or false"),
        ("postgresPasswordRotation", -1, r"argusai:postgresPasswordRotation' must be an integer from 0 to 100"),
        ("encryptionKeyRotation", 101, r"argusai:encryptionKeyRotation' must be an integer from 0 to 100"),
        ("jwtSecretKeyRotation", "one", r"argusai:jwtSecretKeyRotation' must be an integer from 0 to 100"),
        ("postgresUpgrades", ["17"], r"argusai:postgresUpgrades' must be a list of integers from 10 to 99"),
        ("postgresUpgrades", [9], r"argusai:postgresUpgrades' must be a list of integers from 10 to 99"),
        ("postgresUpgrades", [17, 16], r"argusai:postgresUpgrades' must list each major once, oldest first"),
        ("postgresUpgrades", [17, 17], r"argusai:postgresUpgrades' must list each major once, oldest first"),
    ],
)
def test_bad_value_names_key_and_declares_nothing(key: str, value: Any, match: str) -> None:
    """Each bad value is rejected with the key and what is allowed."""
    _fails({key: value}, match=match)


def test_a_previous_key_needs_the_release_steps() -> None:
    """A previous key asks for the re-encryption, which runs the release's own code (schemaGate)."""
    message = _fails(
        {"schemaGate": False},
        {"encryptionKeyPrevious": VALID_FERNET},
        match=r"argusai:encryptionKeyPrevious' re-encrypts with the release's own code: needs argusai:schemaGate",
    )
    assert VALID_FERNET not in message
    _fails(
        {"schemaGate": False, "encryptionKeyRotation": 1},
        match=r"argusai:encryptionKeyRotation' re-encrypts with the release's own code: needs argusai:schemaGate",
    )


def test_unknown_key_is_rejected() -> None:
    """A typo must not be silently ignored (the operator would think they set it)."""
    _fails({"databse": "postgres"}, match=r"argusai:databse' is not a known key; known keys: database,")


def test_duplicate_env_across_plain_and_secret_lists() -> None:
    """One variable set twice would depend on ordering; refuse it."""
    _fails(
        {"backendEnv": ["MQTT_PASSWORD=a"]},
        {"backendSecretEnv": ["MQTT_PASSWORD=b"]},
        match=r"argusai:backendSecretEnv' sets MQTT_PASSWORD more than once",
    )


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("postgresPassword", "short", r"argusai:postgresPassword' must be at least 8 characters"),
        ("postgresPassword", "changeme", r"argusai:postgresPassword' is a well-known default password"),
        ("encryptionKey", "not-a-fernet-key", r"argusai:encryptionKey' must be a Fernet key"),
        ("encryptionKey", base64.urlsafe_b64encode(b"x" * 16).decode(), r"argusai:encryptionKey' must be a Fernet"),
        ("jwtSecretKey", "tooshort", r"argusai:jwtSecretKey' must be at least 32 characters"),
        ("encryptionKeyPrevious", "not-a-fernet-key", r"argusai:encryptionKeyPrevious' must be a Fernet key"),
    ],
)
def test_bad_secret_is_rejected_without_echoing_it(key: str, value: str, match: str) -> None:
    """Secret values are validated too, and the error never contains the value."""
    message = _fails(secrets={key: value}, match=match)
    assert value not in message


def test_fernet_check_accepts_real_keys_and_rejects_standard_alphabet() -> None:
    """A standard-base64 key with + or / is not a Fernet key; a url-safe one of 32 bytes is."""
    assert fernet_key_problem(VALID_FERNET) is None
    assert fernet_key_problem(base64.b64encode(b"\xfb" * 32).decode()) is not None


def test_values_are_normalised() -> None:
    """Case-insensitive choices are accepted and stored in canonical form."""
    deployment = run_program("embedded", {"logLevel": "debug", "database": "SQLite"})
    env = deployment.container("backend").plain("envs")
    assert "LOG_LEVEL=DEBUG" in env


def test_every_key_read_is_declared_in_pulumi_yaml() -> None:
    """Pulumi.yaml types, describes and defaults exactly the keys the program reads."""
    from components.settings import known_keys

    declared = project_file()["config"]
    assert sorted(declared) == sorted(known_keys())
    for key, decl in declared.items():
        assert {"type", "description", "default"} <= set(decl), key


def test_stack_file_overrides_project_defaults() -> None:
    """Layering: Pulumi.yaml default, then Pulumi.<stack>.yaml, then overrides."""
    config, _ = layered_config("prod", {"backendPort": 9000})
    assert config["argusai:database"] == "postgres"  # from Pulumi.prod.yaml
    assert config["argusai:postgresUser"] == "argusai"  # from Pulumi.yaml
    assert config["argusai:backendPort"] == "9000"  # override


def test_config_error_names_full_key() -> None:
    """The error object carries the namespaced key for tooling."""
    assert ConfigError("backendPort", "x").key == "argusai:backendPort"


def test_defaults_come_from_pulumi_yaml_alone() -> None:
    """One source: with no config at all (no CLI layering), the program gets Pulumi.yaml's defaults."""
    import pulumi

    from components.settings import config_schema, load_settings

    pulumi.runtime.set_all_config({}, [])
    settings = load_settings(pulumi.Config("argusai"), project="argusai", stack="bare")
    schema = config_schema()
    assert settings.backend_port == schema["backendPort"]["default"]
    assert settings.database == schema["database"]["default"]
    assert settings.backend_image == schema["backendImage"]["default"]
    assert settings.registry_digests is schema["registryDigests"]["default"]
    assert settings.backup_keep == schema["backupKeep"]["default"]


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("httpsPort", "abc", r"argusai:httpsPort' must be an integer from 1 to 65535; got 'abc'"),
        ("httpPort", 0, r"argusai:httpPort' must be an integer from 1 to 65535; got 0"),
        ("tlsCertificateMinutes", 1, r"argusai:tlsCertificateMinutes' must be an integer from 2 to 10000"),
        ("tlsSource", "letsencrypt", r"argusai:tlsSource' must be one of auto, operator, acme, stack-ca"),
        ("proxyImage", "Not An Image", r"argusai:proxyImage' must be an image reference"),
        ("pythonIndexUrl", "ftp://mirror/simple", r"argusai:pythonIndexUrl' must be the http\(s\) URL"),
        ("httpPort", 8000, r"argusai:backendPort' must differ from argusai:httpPort \(8000\)"),
    ],
)
def test_https_and_driver_keys_are_validated_with_https_off(key: str, value: Any, match: str) -> None:
    """A bad value fails the day it is set, not the day HTTPS (or PostgreSQL) is turned on."""
    _fails({key: value}, match=match)

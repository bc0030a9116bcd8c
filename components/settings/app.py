"""The application's keys: images, ports, the backend's environment, its keys, backups and names."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from dataclasses import dataclass

import pulumi

from components.naming import Engine
from components.settings.reader import ConfigError, Reader, check

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SAME_SITE = ("lax", "strict", "none")
PORT_MIN, PORT_MAX = 1, 65535
BACKUP_INTERVAL_MAX_HOURS = 24 * 30
BACKUP_KEEP_MAX = 1000
#: Rotations of a generated key: a bound that keeps a typo (1000 for 1) from meaning anything.
KEY_ROTATION_MAX = 100
FERNET_KEY_BYTES = 32
JWT_MIN_LENGTH = 32
# Longest physical name is "<prefix>-<stack>-postgres"; keep the prefix readable and bounded.
PREFIX_MAX = 32
# Docker object names ([a-zA-Z0-9][a-zA-Z0-9_.-]*); lower case keeps them uniform across stacks.
_NAME_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")

#: Environment variables the program sets itself; operators may not override them through backendEnv.
RESERVED_ENV = (
    "DATABASE_URL",
    "DB_POOL_SIZE",
    "DB_MAX_OVERFLOW",
    "DB_POOL_PRE_PING",
    "DB_POOL_RECYCLE",
    "ENCRYPTION_KEY",
    "JWT_SECRET_KEY",
    "LOG_LEVEL",
    "CORS_ORIGINS",
    "COOKIE_SECURE",
    "COOKIE_SAMESITE",
)


@dataclass(frozen=True)
class BackendEnv:
    """The operator's extra backend settings."""

    plain: tuple[tuple[str, str], ...]
    """`backendEnv` as (name, value) pairs."""
    secret_names: tuple[str, ...]
    """Names of the `backendSecretEnv` entries."""
    secret: pulumi.Output[list[str]] | None
    """`backendSecretEnv` as `NAME=value` strings (secret), or None when there are none."""


def fernet_key_problem(value: str) -> str | None:
    """Explain why a string is not a Fernet key (url-safe base64 of 32 bytes), or return None."""
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return "must be a Fernet key: url-safe base64 of 32 bytes"
    if len(raw) != FERNET_KEY_BYTES or base64.urlsafe_b64encode(raw).decode() != value:
        return "must be a Fernet key: url-safe base64 of 32 bytes"
    return None


def jwt_problem(value: str) -> str | None:
    """Explain why a string is too weak a JWT signing key, or return None."""
    if len(value) < JWT_MIN_LENGTH:
        return f"must be at least {JWT_MIN_LENGTH} characters (or unset, to generate one)"
    return None


def docker_engine() -> Engine:
    """The Docker provider's own `docker:host` and `docker:certPath` (the program talks to the same engine)."""
    provider = pulumi.Config("docker")
    return Engine(host=provider.get("host") or None, cert_path=provider.get("certPath") or None)


def name_prefix(reader: Reader, project: str) -> str:
    """`namePrefix`, the project's name when empty."""
    prefix = reader.string("namePrefix", allow_empty=True) or project
    check(
        "namePrefix",
        bool(_NAME_PREFIX.match(prefix)) and len(prefix) <= PREFIX_MAX,
        f"must be lower-case letters, digits, '.', '_' or '-', at most {PREFIX_MAX} characters; got '{prefix}'",
    )
    return prefix


def bind_address(reader: Reader) -> str:
    """`bindAddress`: an IPv4 or IPv6 address."""
    value = reader.string("bindAddress").strip()
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError("bindAddress", f"must be an IPv4 or IPv6 address; got '{value}'") from None
    return value


def port(reader: Reader, key: str) -> int:
    """A TCP port."""
    return reader.integer(key, PORT_MIN, PORT_MAX)


def _env_pairs(key: str, entries: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for entry in entries:
        name, sep, value = entry.partition("=")
        check(key, bool(sep) and bool(_ENV_NAME.match(name)), "entries must look like NAME=value")
        check(
            key,
            name not in RESERVED_ENV,
            f"must not set {name}: the program sets it (reserved: {', '.join(RESERVED_ENV)})",
        )
        pairs.append((name, value))
    return pairs


def backend_env(reader: Reader) -> BackendEnv:
    """`backendEnv` and `backendSecretEnv`: NAME=value entries, no reserved name, no name twice."""
    plain = _env_pairs("backendEnv", reader.string_list("backendEnv"))
    secret_raw = reader.string_list("backendSecretEnv")
    secret = _env_pairs("backendSecretEnv", secret_raw)
    taken: set[str] = set()
    for key, names in (("backendEnv", [n for n, _ in plain]), ("backendSecretEnv", [n for n, _ in secret])):
        for name in names:
            check(key, name not in taken, f"sets {name} more than once (backendEnv and backendSecretEnv together)")
            taken.add(name)
    return BackendEnv(
        plain=tuple(plain),
        secret_names=tuple(name for name, _ in secret),
        secret=pulumi.Output.secret(list(secret_raw)) if secret_raw else None,
    )


def cors_origins(reader: Reader) -> str:
    """`corsOrigins`: comma-separated http(s) origins, or empty."""
    value = reader.stripped("corsOrigins")
    for origin in filter(None, (part.strip() for part in value.split(","))):
        check("corsOrigins", bool(_ORIGIN.match(origin)), f"must list http(s) origins; got '{origin}'")
    return value


def cookies(reader: Reader, *, https: bool) -> tuple[bool, str]:
    """(COOKIE_SECURE, COOKIE_SAMESITE). Behind HTTPS the cookie is Secure whatever the key says."""
    secure = reader.boolean("cookieSecure") or https
    same_site = reader.choice("cookieSameSite", SAME_SITE, fold=str.lower)
    check("cookieSameSite", same_site != "none" or secure, "may be 'none' only with argusai:cookieSecure true")
    return secure, same_site

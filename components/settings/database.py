"""The database keys: the mode, the stack's own PostgreSQL, and a server kept elsewhere (`databaseUrl`)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import pulumi

from components.settings.reader import ConfigError, Reader, check, is_secret


class DatabaseKind(StrEnum):
    """The `database` key: where the data lives."""

    SQLITE = "sqlite"
    """A file in the backend's data volume."""
    POSTGRES = "postgres"
    """The stack's own PostgreSQL container."""
    EXTERNAL = "external"
    """A PostgreSQL server kept elsewhere, named by `databaseUrl`."""

    @property
    def is_server(self) -> bool:
        """Whether the data lives in a PostgreSQL server (the stack's own, or one kept elsewhere)."""
        return self is not DatabaseKind.SQLITE


#: libpq's sslmode values.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
#: sslmode values that check the server's certificate against databaseCaCert.
VERIFYING_SSL_MODES = ("verify-ca", "verify-full")
#: libpq URL parameters an external databaseUrl may carry (sslrootcert comes from databaseCaCert).
URL_PARAMETERS = ("sslmode", "connect_timeout", "application_name")
URL_SCHEMES = ("postgresql", "postgres")
POSTGRES_DRIVERS = ("psycopg", "psycopg2")
PASSWORD_MIN_LENGTH = 8
#: The PostgreSQL majors an upgrade may name (10: the first of the two-part version numbers).
PG_MAJOR_MIN, PG_MAJOR_MAX = 10, 99
#: Rotations of the generated password: every one keeps a generator in the state, so a bound keeps it small.
PASSWORD_ROTATION_MAX = 100
#: A password the old compose file shipped as its default: never accept it.
KNOWN_WEAK_PASSWORDS = frozenset({"changeme", "password", "postgres", "argusai"})
# PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes.
PG_IDENTIFIER_MAX = 63
PORT_MIN, PORT_MAX = 1, 65535
# Unquoted PostgreSQL identifier: what the official image passes to CREATE USER / CREATE DATABASE.
_PG_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_$]*$")
_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")
_DER_SEQUENCE = 0x30
_DEFAULT_PG_PORT = 5432


@dataclass(frozen=True)
class PostgresSettings:
    """The stack's own PostgreSQL (its image also runs pg_dump and psql in external mode)."""

    image: str
    """PostgreSQL image reference."""
    user: str
    """Role the backend connects as."""
    db: str
    """Database the backend uses."""
    driver: str
    """The backend's PostgreSQL driver, named in DATABASE_URL."""
    password: pulumi.Output[str] | None
    """Operator-supplied password (secret), or None to generate one."""
    password_rotation: int
    """How many times the generated password was rotated: each number is a generator of its own."""
    upgrades: tuple[int, ...]
    """The majors the stack's data was upgraded to, in order; each has a data volume, the last one serves."""
    driver_index: str
    """The package index the driver is installed from when the backend image carries none."""


@dataclass(frozen=True)
class ExternalDatabase:
    """A PostgreSQL server kept elsewhere, parsed from `databaseUrl` (the password stays an Output)."""

    host: str
    """Host name or address (IPv6 without brackets)."""
    port: int
    """TCP port."""
    user: str
    """Role to connect as."""
    db: str
    """Database name."""
    password: pulumi.Output[str]
    """The role's password (secret)."""
    parameters: tuple[tuple[str, str], ...]
    """libpq URL parameters (sslmode, connect_timeout, application_name), in the order given."""
    ca_cert: str | None
    """PEM of the CA that signed the server's certificate (`databaseCaCert`), or None."""

    @property
    def sslmode(self) -> str | None:
        """The URL's sslmode, None when libpq's default (prefer) applies."""
        return dict(self.parameters).get("sslmode")


def password_problem(value: str) -> str | None:
    """Explain why a supplied PostgreSQL password is refused, or return None."""
    if len(value) < PASSWORD_MIN_LENGTH:
        return f"must be at least {PASSWORD_MIN_LENGTH} characters (or unset, to generate one)"
    if value.lower() in KNOWN_WEAK_PASSWORDS:
        return "is a well-known default password; choose another (or unset it, to generate one)"
    if "\x00" in value:
        return "must not contain a NUL character"
    return None


def _identifier(reader: Reader, key: str) -> str:
    value = reader.string(key)
    check(
        key,
        bool(_PG_IDENTIFIER.match(value)) and len(value) <= PG_IDENTIFIER_MAX,
        "must be a PostgreSQL identifier: lower-case letters, digits, '_' or '$', not starting with a digit, "
        f"at most {PG_IDENTIFIER_MAX} characters; got '{value}'",
    )
    check(key, not value.startswith("pg_"), f"must not start with 'pg_' (reserved by PostgreSQL); got '{value}'")
    return value


def masked_url(url: str) -> str:
    """The URL with its password replaced by `***`, for messages (a value that does not parse: `<unparsable>`)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return "<unparsable>"
    if "@" in netloc:
        credentials, _, host = netloc.rpartition("@")
        user = credentials.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in credentials else f"{user}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _ca_certificate(reader: Reader) -> str | None:
    """`databaseCaCert`: one or more PEM certificates (the CA chain), nothing else; None when unset."""
    value = reader.stripped("databaseCaCert")
    if not value:
        return None
    if "PRIVATE KEY" in value:
        raise ConfigError("databaseCaCert", "holds a private key; give only the CA's certificate (PEM)")
    blocks = _PEM_CERTIFICATE.findall(value)
    rest = _PEM_CERTIFICATE.sub("", value).strip()
    check("databaseCaCert", bool(blocks) and not rest, "must be PEM certificates (-----BEGIN CERTIFICATE-----)")
    for block in blocks:
        try:
            der = base64.b64decode("".join(block.split()), validate=True)
        except (binascii.Error, ValueError):
            der = b""
        check("databaseCaCert", der[:1] == bytes([_DER_SEQUENCE]), "holds a PEM block that is not a certificate")
    return value + "\n"


def _external_database(reader: Reader, kind: DatabaseKind) -> ExternalDatabase | None:
    """`databaseUrl` (+ `databaseCaCert`) for `database: external`; both must be unset in the other modes.

    Every message names the key and shows the URL with its password masked, never the password.
    """
    key = "databaseUrl"
    url = reader.raw(key) or ""
    ca_cert = _ca_certificate(reader)
    if kind is not DatabaseKind.EXTERNAL:
        check(key, not url, "is used only with argusai:database external; unset it")
        check("databaseCaCert", ca_cert is None, "is used only with argusai:database external; unset it")
        return None
    check(key, bool(url.strip()), "must be set with argusai:database external: postgresql://user:password@host:port/db")
    shown = masked_url(url)
    check(key, is_secret(key), "holds a password: set it with `pulumi config set --secret argusai:databaseUrl ...`")
    form = f"must look like postgresql://user:password@host:port/db[?sslmode=...]; got '{shown}'"
    try:
        parts = urlsplit(url.strip())
        port = parts.port or _DEFAULT_PG_PORT
        host = parts.hostname
    except ValueError:
        raise ConfigError(key, form) from None
    check(key, parts.scheme in URL_SCHEMES, f"must be a PostgreSQL URL (postgresql://); got '{shown}'")
    check(key, bool(host), f"names no host; {form}")
    check(key, bool(parts.username), f"names no user; {form}")
    check(key, bool(parts.password), f"has no password; {form}")
    check(key, PORT_MIN <= port <= PORT_MAX, f"port must be from {PORT_MIN} to {PORT_MAX}; got '{shown}'")
    db = unquote(parts.path.lstrip("/"))
    check(key, bool(db) and "/" not in db, f"names no database; {form}")
    check(key, not parts.fragment, f"must not have a #fragment; got '{shown}'")
    parameters = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        check(
            key,
            name in URL_PARAMETERS,
            f"parameter '{name}' is not allowed (allowed: {', '.join(URL_PARAMETERS)}; the CA comes from "
            "argusai:databaseCaCert)",
        )
        parameters.append((name, value))
    sslmode = dict(parameters).get("sslmode")
    check(
        key, sslmode is None or sslmode in SSL_MODES, f"sslmode must be one of {', '.join(SSL_MODES)}; got '{sslmode}'"
    )
    check(
        "databaseCaCert",
        sslmode not in VERIFYING_SSL_MODES or ca_cert is not None,
        f"must be set for sslmode={sslmode}: the CA certificate (PEM) that signed the server's certificate",
    )
    check(
        "databaseCaCert",
        ca_cert is None or sslmode in ("require", *VERIFYING_SSL_MODES),
        "is used only with sslmode require, verify-ca or verify-full in argusai:databaseUrl",
    )
    return ExternalDatabase(
        host=host or "",
        port=port,
        user=unquote(parts.username or ""),
        db=db,
        password=pulumi.Output.secret(unquote(parts.password or "")),
        parameters=tuple(parameters),
        ca_cert=ca_cert,
    )


def _index_url(reader: Reader) -> str:
    """`pythonIndexUrl`: an http(s) URL of a package index (its simple API), or empty for pip's own."""
    value = reader.string("pythonIndexUrl", allow_empty=True).strip()
    if not value:
        return ""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    check("pythonIndexUrl", ok, f"must be the http(s) URL of a package index's simple API; got '{value}'")
    return value.rstrip("/")


def _upgrades(reader: Reader) -> tuple[int, ...]:
    """`postgresUpgrades`: PostgreSQL majors, each newer than the one before."""
    majors = reader.integer_list("postgresUpgrades", PG_MAJOR_MIN, PG_MAJOR_MAX)
    rising = all(a < b for a, b in zip(majors, majors[1:], strict=False))
    check(
        "postgresUpgrades",
        rising,
        f"must list each major once, oldest first (each newer than the one before); got {majors}",
    )
    return tuple(majors)


def read_database(reader: Reader) -> tuple[DatabaseKind, PostgresSettings, ExternalDatabase | None]:
    """The mode, the PostgreSQL keys (validated in every mode) and the server kept elsewhere (external only)."""
    kind = DatabaseKind(reader.choice("database", tuple(DatabaseKind), fold=str.lower))
    postgres = PostgresSettings(
        image=reader.image("postgresImage"),
        user=_identifier(reader, "postgresUser"),
        db=_identifier(reader, "postgresDb"),
        driver=reader.choice("postgresDriver", POSTGRES_DRIVERS, fold=str.lower),
        password=reader.secret("postgresPassword", password_problem),
        password_rotation=reader.integer("postgresPasswordRotation", 0, PASSWORD_ROTATION_MAX),
        upgrades=_upgrades(reader),
        driver_index=_index_url(reader),
    )
    return kind, postgres, _external_database(reader, kind)

"""The only code that reads `pulumi.Config`: every key is parsed and validated here.

:func:`load_settings` returns a frozen :class:`Settings` or raises :class:`ConfigError` naming the key and
what is allowed. It runs before any resource is declared, so a bad stack never reaches the Docker host.
Secret values are wrapped in `pulumi.Output.secret` the moment they are read and never printed.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import pulumi
import yaml
from pulumi.runtime import config as runtime_config

from components import certs
from components.naming import Naming

NAMESPACE = "argusai"

DATABASES = ("sqlite", "postgres", "external")
#: The database modes whose data lives in a PostgreSQL server (the stack's own, or one kept elsewhere).
SERVER_DATABASES = ("postgres", "external")
#: libpq's sslmode values.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
#: sslmode values that check the server's certificate against databaseCaCert.
VERIFYING_SSL_MODES = ("verify-ca", "verify-full")
#: libpq URL parameters an external databaseUrl may carry (sslrootcert comes from databaseCaCert).
URL_PARAMETERS = ("sslmode", "connect_timeout", "application_name")
URL_SCHEMES = ("postgresql", "postgres")
POSTGRES_DRIVERS = ("psycopg", "psycopg2")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SAME_SITE = ("lax", "strict", "none")
#: Where the proxy's certificate comes from (`auto` picks one from the other TLS keys and the names).
TLS_SOURCES = ("auto", "operator", "acme", "stack-ca")
#: Lifetime bounds of the stack CA's server certificates: shorter than Caddy's intermediate (7 days).
TLS_CERTIFICATE_MINUTES = (2, 10000)

PORT_MIN, PORT_MAX = 1, 65535
BACKUP_INTERVAL_MAX_HOURS = 24 * 30
BACKUP_KEEP_MAX = 1000
FERNET_KEY_BYTES = 32
PASSWORD_MIN_LENGTH = 8
JWT_MIN_LENGTH = 32
# PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes.
PG_IDENTIFIER_MAX = 63
# Longest physical name is "<prefix>-<stack>-postgres"; keep the prefix readable and bounded.
PREFIX_MAX = 32

# Unquoted PostgreSQL identifier: what the official image passes to CREATE USER / CREATE DATABASE.
_PG_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_$]*$")
# Docker object names ([a-zA-Z0-9][a-zA-Z0-9_.-]*); lower case keeps them uniform across stacks.
_NAME_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REF = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]+)?/)?"  # optional registry host[:port]/
    rf"{_COMPONENT}(?:/{_COMPONENT})*"  # repository path
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"  # optional tag
    r"(?:@sha256:[a-f0-9]{64})?$"  # optional digest
)
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
#: A password the old compose file shipped as its default: never accept it.
KNOWN_WEAK_PASSWORDS = frozenset({"changeme", "password", "postgres", "argusai"})

#: The project file: the one place each key's type, description and default are written. The CLI hands
#: its defaults to the program as config; reading them here too lets direct callers (tests, tools) get the
#: same values, and the key list is the project file's.
PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"


@cache
def config_schema() -> Mapping[str, Mapping[str, Any]]:
    """Return the `config:` block of Pulumi.yaml: key -> {type, description, default}."""
    declared = (yaml.safe_load(PROJECT_FILE.read_text()) or {}).get("config") or {}
    return {key.split(":", 1)[-1]: decl for key, decl in declared.items()}


def known_keys() -> tuple[str, ...]:
    """Every key this program reads; all of them live in the `argusai` namespace."""
    return tuple(config_schema())


class ConfigError(Exception):
    """A config value is missing, of the wrong type or out of range."""

    def __init__(self, key: str, message: str) -> None:
        """Name the full config key (`argusai:<key>`) and what is allowed."""
        self.key = f"{NAMESPACE}:{key}"
        super().__init__(f"config '{self.key}' {message}")


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


@dataclass(frozen=True)
class HttpsSettings:
    """HTTPS through the proxy: the names users browse to and where the certificate comes from."""

    hostnames: tuple[str, ...]
    """The names (or addresses) users browse to, lower case, in the order given; the first is the stack's URL."""
    https_port: int
    """Host port of HTTPS."""
    http_port: int
    """Host port of plain HTTP (redirects; ACME HTTP-01)."""
    source: Literal["operator", "acme", "stack-ca"]
    """The certificate source, `auto` resolved."""
    certificate: pulumi.Output[str] | None
    """operator: the certificate chain (PEM; kept secret with its key)."""
    private_key: pulumi.Output[str] | None
    """operator: the private key (secret)."""
    certificate_summary: certs.CertificateSummary | None
    """operator: what the checks found (subject, names, expiry)."""
    acme_email: str | None
    """acme: the contact address, or None."""
    acme_directory: str | None
    """acme: a private ACME server's directory URL, or None for Caddy's default (Let's Encrypt)."""
    acme_ca_cert: str | None
    """acme: PEM of the CA that signed the private ACME server's HTTPS certificate, or None."""
    certificate_minutes: int
    """stack-ca: lifetime of the server certificates the stack's CA issues."""
    proxy_image: str
    """The proxy's image reference."""

    @property
    def origins(self) -> tuple[str, ...]:
        """The HTTPS origins users browse to (the port only when it is not 443)."""
        port = "" if self.https_port == HTTPS_DEFAULT_PORT else f":{self.https_port}"
        return tuple(f"https://{certs.url_host(name)}{port}" for name in self.hostnames)


@dataclass(frozen=True)
class Settings:
    """Validated, typed view of one stack's configuration."""

    project: str
    """Pulumi project name."""
    stack: str
    """Pulumi stack name."""
    naming: Naming
    """Physical-name helper built from `namePrefix` and the stack."""
    database: Literal["sqlite", "postgres", "external"]
    """`sqlite` (data volume only), `postgres` (adds a PostgreSQL container) or `external` (a server kept
    elsewhere, named by `databaseUrl`)."""
    backend_image: str
    """Backend image reference."""
    backend_port: int
    """Host port that publishes the backend."""
    frontend_image: str | None
    """Frontend image reference, or None when the frontend is disabled."""
    frontend_port: int
    """Host port that publishes the frontend."""
    bind_address: str
    """Host address that published ports listen on."""
    postgres_image: str
    """PostgreSQL image reference."""
    postgres_user: str
    """PostgreSQL role the backend connects as."""
    postgres_db: str
    """PostgreSQL database the backend uses."""
    postgres_driver: str
    """The backend's PostgreSQL driver, named in DATABASE_URL."""
    postgres_password: pulumi.Output[str] | None
    """Operator-supplied password (secret), or None to generate one."""
    encryption_key: pulumi.Output[str] | None
    """Operator-supplied Fernet key (secret), or None to generate one."""
    jwt_secret_key: pulumi.Output[str] | None
    """Operator-supplied JWT signing key (secret), or None to generate one."""
    protect_data: bool
    """Protect volumes and generated secrets from deletion and replacement."""
    log_level: str
    """Backend LOG_LEVEL."""
    cors_origins: str
    """Backend CORS_ORIGINS (comma-separated), empty to leave the backend's default."""
    cookie_secure: bool
    """Backend COOKIE_SECURE."""
    cookie_same_site: str
    """Backend COOKIE_SAMESITE."""
    backend_env: tuple[tuple[str, str], ...]
    """Extra plain backend environment variables, as (name, value) pairs."""
    backend_secret_env_names: tuple[str, ...]
    """Names of the extra secret backend environment variables."""
    backend_secret_env: pulumi.Output[list[str]] | None
    """The extra secret variables as `NAME=value` strings (secret), or None when there are none."""
    backup_enabled: bool
    """Run the backup container."""
    backup_interval_hours: int
    """Hours between two backups."""
    backup_keep: int
    """How many backups to keep."""
    registry_digests: bool
    """Resolve image tags to the registry's current digest at every run (a new push is deployed)."""
    schema_gate: bool
    """Back up and bring the database to the release's Alembic head before a new backend image serves."""
    external_database: ExternalDatabase | None
    """The server of `database: external` (None in the other modes)."""
    https: HttpsSettings | None
    """HTTPS through the proxy (`tlsHostnames` not empty), or None: backend and frontend publish plain HTTP."""


class _Reader:
    """Reads one config namespace and turns values into typed ones or ConfigErrors; defaults from Pulumi.yaml."""

    def __init__(self, config: pulumi.Config) -> None:
        self._config = config

    def raw(self, key: str) -> str | None:
        """The value as the CLI passes it (a string), falling back to Pulumi.yaml's default in the same form."""
        value = self._config.get(key)
        if value is not None:
            return str(value)
        decl = config_schema().get(key)
        if decl is None or "default" not in decl:
            return None
        default = decl["default"]
        if isinstance(default, bool):
            return "true" if default else "false"
        if isinstance(default, (list, dict)):
            return json.dumps(default)
        return str(default)

    def string(self, key: str, *, allow_empty: bool = False) -> str:
        value = self.raw(key) or ""
        if not allow_empty and not value.strip():
            raise ConfigError(key, "must not be empty")
        return value

    def choice(self, key: str, allowed: tuple[str, ...], *, fold: Callable[[str], str]) -> str:
        value = fold(self.string(key))
        if value not in allowed:
            raise ConfigError(key, f"must be one of {', '.join(allowed)}; got '{value}'")
        return value

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.raw(key) or ""
        try:
            number = int(value.strip(), 10)
        except ValueError:
            raise ConfigError(key, f"must be an integer from {low} to {high}; got '{value}'") from None
        if not low <= number <= high:
            raise ConfigError(key, f"must be an integer from {low} to {high}; got {number}")
        return number

    def boolean(self, key: str) -> bool:
        value = self.raw(key) or ""
        folded = value.strip().lower()
        if folded not in ("true", "false"):
            raise ConfigError(key, f"must be true or false; got '{value}'")
        return folded == "true"

    def string_list(self, key: str) -> list[str]:
        raw = self.raw(key)
        try:
            value = [] if raw is None else json.loads(raw)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(key, 'must be a list of strings, e.g. ["NAME=value"]')
        return value


def _check(key: str, ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(key, message)


def _image(reader: _Reader, key: str, *, allow_empty: bool = False) -> str:
    value = reader.string(key, allow_empty=allow_empty).strip()
    if allow_empty and not value:
        return value
    _check(key, bool(_IMAGE_REF.match(value)), f"must be an image reference like 'name:tag'; got '{value}'")
    return value


def _identifier(reader: _Reader, key: str) -> str:
    value = reader.string(key)
    _check(
        key,
        bool(_PG_IDENTIFIER.match(value)) and len(value) <= PG_IDENTIFIER_MAX,
        "must be a PostgreSQL identifier: lower-case letters, digits, '_' or '$', not starting with a digit, "
        f"at most {PG_IDENTIFIER_MAX} characters; got '{value}'",
    )
    _check(key, not value.startswith("pg_"), f"must not start with 'pg_' (reserved by PostgreSQL); got '{value}'")
    return value


def _secret(reader: _Reader, key: str, validate: Callable[[str], str | None]) -> pulumi.Output[str] | None:
    """Read an optional secret: empty or unset means "generate one". Never echoes the value."""
    value = reader.raw(key)
    if value is None or value == "":
        return None
    problem = validate(value)
    if problem:
        raise ConfigError(key, problem)
    return pulumi.Output.secret(value)


def _password_problem(value: str) -> str | None:
    if len(value) < PASSWORD_MIN_LENGTH:
        return f"must be at least {PASSWORD_MIN_LENGTH} characters (or unset, to generate one)"
    if value.lower() in KNOWN_WEAK_PASSWORDS:
        return "is a well-known default password; choose another (or unset it, to generate one)"
    if "\x00" in value:
        return "must not contain a NUL character"
    return None


def fernet_key_problem(value: str) -> str | None:
    """Explain why a string is not a Fernet key (url-safe base64 of 32 bytes), or return None."""
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return "must be a Fernet key: url-safe base64 of 32 bytes"
    if len(raw) != FERNET_KEY_BYTES or base64.urlsafe_b64encode(raw).decode() != value:
        return "must be a Fernet key: url-safe base64 of 32 bytes"
    return None


def _jwt_problem(value: str) -> str | None:
    if len(value) < JWT_MIN_LENGTH:
        return f"must be at least {JWT_MIN_LENGTH} characters (or unset, to generate one)"
    return None


def _env_pairs(key: str, entries: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for entry in entries:
        name, sep, value = entry.partition("=")
        _check(key, bool(sep) and bool(_ENV_NAME.match(name)), "entries must look like NAME=value")
        _check(
            key,
            name not in RESERVED_ENV,
            f"must not set {name}: the program sets it (reserved: {', '.join(RESERVED_ENV)})",
        )
        pairs.append((name, value))
    return pairs


def _origins(reader: _Reader) -> str:
    value = reader.string("corsOrigins", allow_empty=True).strip()
    for origin in filter(None, (part.strip() for part in value.split(","))):
        _check("corsOrigins", bool(_ORIGIN.match(origin)), f"must list http(s) origins; got '{origin}'")
    return value


HTTPS_DEFAULT_PORT = 443
#: Keys that mean something only with HTTPS on, and the source each belongs to (None: every source).
_TLS_KEYS: dict[str, str | None] = {
    "tlsCertificate": "operator",
    "tlsPrivateKey": "operator",
    "acmeEmail": "acme",
    "acmeDirectory": "acme",
    "acmeCaCert": "acme",
}


def _certs_check(call: Callable[[], Any]) -> Any:
    """Run a check of components.certs, turning its CertificateError into the ConfigError naming the key."""
    try:
        return call()
    except certs.CertificateError as exc:
        raise ConfigError(exc.key, exc.message) from None


def _tls_source(reader: _Reader, hostnames: tuple[str, ...], has_certificate: bool, has_directory: bool) -> str:
    """Resolve `tlsSource`; `auto` picks operator, acme or stack-ca from the other keys and the names."""
    source = reader.choice("tlsSource", TLS_SOURCES, fold=str.lower)
    kinds = {name: certs.hostname_kind(name) for name in hostnames}
    private = [name for name, kind in kinds.items() if kind != "public"]
    if source == "auto":
        if has_certificate:
            return "operator"
        if has_directory or not private:
            return "acme"
        if len(private) == len(hostnames):
            return "stack-ca"
        raise ConfigError(
            "tlsHostnames",
            f"mixes public names with names no public CA signs ({', '.join(private)}); list one kind, or set "
            "argusai:tlsSource (stack-ca covers both) or your own argusai:tlsCertificate",
        )
    _check(
        "tlsSource",
        source != "acme" or has_directory or not private,
        f"acme with Let's Encrypt cannot cover {', '.join(private)} (no public CA signs such names); use stack-ca, "
        "your own certificate, or a private ACME server (argusai:acmeDirectory)",
    )
    return source


def _https(reader: _Reader) -> HttpsSettings | None:
    """`tlsHostnames` and the keys of its certificate source; None (and no TLS key set) when HTTPS is off."""
    names = [name.strip() for name in reader.string_list("tlsHostnames")]
    present = {key: (reader.raw(key) or "").strip() for key in _TLS_KEYS}
    if not names:
        for key, value in present.items():
            _check(key, not value, "is used only with HTTPS on (argusai:tlsHostnames); unset it")
        return None
    hostnames = tuple(_certs_check(lambda name=name: certs.check_hostname(name)) for name in names)
    _check("tlsHostnames", len(set(hostnames)) == len(hostnames), "lists a name twice")
    https_port = reader.integer("httpsPort", PORT_MIN, PORT_MAX)
    http_port = reader.integer("httpPort", PORT_MIN, PORT_MAX)
    _check("httpPort", http_port != https_port, f"must differ from argusai:httpsPort ({https_port})")
    source = _tls_source(reader, hostnames, bool(present["tlsCertificate"]), bool(present["acmeDirectory"]))
    for key, value in present.items():
        owner = _TLS_KEYS[key]
        _check(key, not value or owner == source, f"is used only with argusai:tlsSource {owner}; unset it")

    certificate = private_key = summary = None
    if source == "operator":
        for key in ("tlsCertificate", "tlsPrivateKey"):
            _check(key, bool(present[key]), "must be set with argusai:tlsSource operator (PEM)")
        _check(
            "tlsPrivateKey",
            runtime_config.is_config_secret(f"{NAMESPACE}:tlsPrivateKey"),
            "is a private key: set it with `pulumi config set --secret argusai:tlsPrivateKey < key.pem`",
        )
        summary = _certs_check(
            lambda: certs.check_certificate_pair(present["tlsCertificate"], present["tlsPrivateKey"], hostnames)
        )
        certificate = pulumi.Output.secret(present["tlsCertificate"] + "\n")
        private_key = pulumi.Output.secret(present["tlsPrivateKey"] + "\n")
    directory = present["acmeDirectory"] or None
    if directory is not None:
        parts = urlsplit(directory)
        _check(
            "acmeDirectory",
            parts.scheme == "https" and bool(parts.hostname),
            f"must be an https:// URL of an ACME directory; got '{directory}'",
        )
    if present["acmeEmail"]:
        _certs_check(lambda: certs.check_email(present["acmeEmail"]))
    acme_ca = present["acmeCaCert"] or None
    if acme_ca is not None:
        _check("acmeCaCert", directory is not None, "is used only with a private ACME server (argusai:acmeDirectory)")
        _certs_check(lambda: certs.check_ca_bundle(acme_ca, "acmeCaCert"))
    return HttpsSettings(
        hostnames=hostnames,
        https_port=https_port,
        http_port=http_port,
        source=source,  # type: ignore[arg-type]  # resolved from TLS_SOURCES above
        certificate=certificate,
        private_key=private_key,
        certificate_summary=summary,
        acme_email=present["acmeEmail"] or None,
        acme_directory=directory,
        acme_ca_cert=acme_ca + "\n" if acme_ca else None,
        certificate_minutes=reader.integer("tlsCertificateMinutes", *TLS_CERTIFICATE_MINUTES),
        proxy_image=_image(reader, "proxyImage"),
    )


_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\s*([A-Za-z0-9+/=\s]+?)-----END CERTIFICATE-----")
_DER_SEQUENCE = 0x30
_DEFAULT_PG_PORT = 5432


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


def _ca_certificate(reader: _Reader) -> str | None:
    """`databaseCaCert`: one or more PEM certificates (the CA chain), nothing else; None when unset."""
    value = (reader.raw("databaseCaCert") or "").strip()
    if not value:
        return None
    if "PRIVATE KEY" in value:
        raise ConfigError("databaseCaCert", "holds a private key; give only the CA's certificate (PEM)")
    blocks = _PEM_CERTIFICATE.findall(value)
    rest = _PEM_CERTIFICATE.sub("", value).strip()
    _check("databaseCaCert", bool(blocks) and not rest, "must be PEM certificates (-----BEGIN CERTIFICATE-----)")
    for block in blocks:
        try:
            der = base64.b64decode("".join(block.split()), validate=True)
        except (binascii.Error, ValueError):
            der = b""
        _check("databaseCaCert", der[:1] == bytes([_DER_SEQUENCE]), "holds a PEM block that is not a certificate")
    return value + "\n"


def _external_database(reader: _Reader, database: str) -> ExternalDatabase | None:
    """`databaseUrl` (+ `databaseCaCert`) for `database: external`; both must be unset in the other modes.

    Every message names the key and shows the URL with its password masked, never the password.
    """
    key = "databaseUrl"
    url = reader.raw(key) or ""
    ca_cert = _ca_certificate(reader)
    if database != "external":
        _check(key, not url, "is used only with argusai:database external; unset it")
        _check("databaseCaCert", ca_cert is None, "is used only with argusai:database external; unset it")
        return None
    _check(
        key, bool(url.strip()), "must be set with argusai:database external: postgresql://user:password@host:port/db"
    )
    shown = masked_url(url)
    _check(
        key,
        runtime_config.is_config_secret(f"{NAMESPACE}:{key}"),
        "holds a password: set it with `pulumi config set --secret argusai:databaseUrl ...`",
    )
    form = f"must look like postgresql://user:password@host:port/db[?sslmode=...]; got '{shown}'"
    try:
        parts = urlsplit(url.strip())
        port = parts.port or _DEFAULT_PG_PORT
        host = parts.hostname
    except ValueError:
        raise ConfigError(key, form) from None
    _check(key, parts.scheme in URL_SCHEMES, f"must be a PostgreSQL URL (postgresql://); got '{shown}'")
    _check(key, bool(host), f"names no host; {form}")
    _check(key, bool(parts.username), f"names no user; {form}")
    _check(key, bool(parts.password), f"has no password; {form}")
    _check(key, PORT_MIN <= port <= PORT_MAX, f"port must be from {PORT_MIN} to {PORT_MAX}; got '{shown}'")
    db = unquote(parts.path.lstrip("/"))
    _check(key, bool(db) and "/" not in db, f"names no database; {form}")
    _check(key, not parts.fragment, f"must not have a #fragment; got '{shown}'")
    parameters = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        _check(
            key,
            name in URL_PARAMETERS,
            f"parameter '{name}' is not allowed (allowed: {', '.join(URL_PARAMETERS)}; the CA comes from "
            "argusai:databaseCaCert)",
        )
        parameters.append((name, value))
    sslmode = dict(parameters).get("sslmode")
    _check(
        key,
        sslmode is None or sslmode in SSL_MODES,
        f"sslmode must be one of {', '.join(SSL_MODES)}; got '{sslmode}'",
    )
    _check(
        "databaseCaCert",
        sslmode not in VERIFYING_SSL_MODES or ca_cert is not None,
        f"must be set for sslmode={sslmode}: the CA certificate (PEM) that signed the server's certificate",
    )
    _check(
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


def _reject_unknown_keys(known: tuple[str, ...]) -> None:
    """A typo (`argusai:databse`) must fail loudly instead of being silently ignored."""
    present: set[str] = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    prefix = f"{NAMESPACE}:"
    for full_key in sorted(present):
        if full_key.startswith(prefix) and full_key[len(prefix) :] not in known:
            key = full_key[len(prefix) :]
            raise ConfigError(key, f"is not a known key; known keys: {', '.join(known)}")


def _unique(key: str, names: list[str], taken: set[str]) -> None:
    for name in names:
        _check(key, name not in taken, f"sets {name} more than once (backendEnv and backendSecretEnv together)")
        taken.add(name)


def load_settings(
    config: pulumi.Config | None = None, project: str | None = None, stack: str | None = None
) -> Settings:
    """Read and validate every `argusai:*` key; raise ConfigError on the first bad one."""
    config = config or pulumi.Config(NAMESPACE)
    project = project or pulumi.get_project()
    stack = stack or pulumi.get_stack()
    _reject_unknown_keys(known_keys())
    reader = _Reader(config)

    database = reader.choice("database", DATABASES, fold=str.lower)
    prefix = reader.string("namePrefix", allow_empty=True) or project
    _check(
        "namePrefix",
        bool(_NAME_PREFIX.match(prefix)) and len(prefix) <= PREFIX_MAX,
        f"must be lower-case letters, digits, '.', '_' or '-', at most {PREFIX_MAX} characters; got '{prefix}'",
    )
    bind_address = reader.string("bindAddress").strip()
    try:
        ipaddress.ip_address(bind_address)
    except ValueError:
        raise ConfigError("bindAddress", f"must be an IPv4 or IPv6 address; got '{bind_address}'") from None

    frontend_image = _image(reader, "frontendImage", allow_empty=True)
    backend_port = reader.integer("backendPort", PORT_MIN, PORT_MAX)
    frontend_port = reader.integer("frontendPort", PORT_MIN, PORT_MAX)
    _check(
        "frontendPort",
        not frontend_image or frontend_port != backend_port,
        f"must differ from argusai:backendPort ({backend_port})",
    )

    https = _https(reader)
    # Behind HTTPS the session cookie is Secure whatever the key says: the browser only ever sees HTTPS.
    cookie_secure = reader.boolean("cookieSecure") or https is not None
    same_site = reader.choice("cookieSameSite", SAME_SITE, fold=str.lower)
    _check("cookieSameSite", same_site != "none" or cookie_secure, "may be 'none' only with argusai:cookieSecure true")

    backend_env = _env_pairs("backendEnv", reader.string_list("backendEnv"))
    secret_env_raw = reader.string_list("backendSecretEnv")
    secret_env = _env_pairs("backendSecretEnv", secret_env_raw)
    taken: set[str] = set()
    _unique("backendEnv", [name for name, _ in backend_env], taken)
    _unique("backendSecretEnv", [name for name, _ in secret_env], taken)

    return Settings(
        project=project,
        stack=stack,
        naming=Naming(prefix=prefix, stack=stack),
        database=database,  # type: ignore[arg-type]  # checked against DATABASES above
        backend_image=_image(reader, "backendImage"),
        backend_port=backend_port,
        frontend_image=frontend_image or None,
        frontend_port=frontend_port,
        bind_address=bind_address,
        postgres_image=_image(reader, "postgresImage"),
        postgres_user=_identifier(reader, "postgresUser"),
        postgres_db=_identifier(reader, "postgresDb"),
        postgres_driver=reader.choice("postgresDriver", POSTGRES_DRIVERS, fold=str.lower),
        postgres_password=_secret(reader, "postgresPassword", _password_problem),
        encryption_key=_secret(reader, "encryptionKey", fernet_key_problem),
        jwt_secret_key=_secret(reader, "jwtSecretKey", _jwt_problem),
        protect_data=reader.boolean("protectData"),
        log_level=reader.choice("logLevel", LOG_LEVELS, fold=str.upper),
        cors_origins=_origins(reader),
        cookie_secure=cookie_secure,
        cookie_same_site=same_site,
        backend_env=tuple(backend_env),
        backend_secret_env_names=tuple(name for name, _ in secret_env),
        backend_secret_env=pulumi.Output.secret(list(secret_env_raw)) if secret_env_raw else None,
        backup_enabled=reader.boolean("backupEnabled"),
        backup_interval_hours=reader.integer("backupIntervalHours", 1, BACKUP_INTERVAL_MAX_HOURS),
        backup_keep=reader.integer("backupKeep", 1, BACKUP_KEEP_MAX),
        registry_digests=reader.boolean("registryDigests"),
        schema_gate=reader.boolean("schemaGate"),
        external_database=_external_database(reader, database),
        https=https,
    )

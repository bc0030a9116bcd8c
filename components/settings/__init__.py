"""The only code that reads `pulumi.Config`: every key is parsed and validated here.

:func:`load_settings` returns a frozen :class:`Settings` or raises :class:`ConfigError` naming the key and
what is allowed. It runs before any resource is declared, so a bad stack never reaches the Docker host.
Secret values are wrapped in `pulumi.Output.secret` the moment they are read and never printed.

- `reader`: the reader, the key list (Pulumi.yaml's `config:` block) and ConfigError;
- `app`: images, ports, the backend's environment and keys, backups, names;
- `database`: the mode (`DatabaseKind`), the stack's own PostgreSQL and a server kept elsewhere;
- `https`: the names, ports and certificate source (`TlsSource`), each source its own typed variant.

Every key is validated whatever the mode: a value that does not apply is refused or unused, never passed
on unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.naming import Naming
from components.settings import app
from components.settings.app import BackendEnv, fernet_key_problem
from components.settings.database import DatabaseKind, ExternalDatabase, PostgresSettings, masked_url, read_database
from components.settings.https import HttpsSettings, TlsSource, read_https
from components.settings.reader import (
    NAMESPACE,
    ConfigError,
    Reader,
    check,
    config_schema,
    known_keys,
    reject_unknown_keys,
)

__all__ = [
    "ConfigError",
    "DatabaseKind",
    "ExternalDatabase",
    "HttpsSettings",
    "Settings",
    "TlsSource",
    "config_schema",
    "fernet_key_problem",
    "known_keys",
    "load_settings",
    "masked_url",
]


@dataclass(frozen=True)
class Settings:
    """Validated, typed view of one stack's configuration."""

    project: str
    """Pulumi project name."""
    stack: str
    """Pulumi stack name."""
    naming: Naming
    """Physical-name helper built from `namePrefix` and the stack."""
    database: DatabaseKind
    """Where the data lives: SQLite, the stack's own PostgreSQL, or a server kept elsewhere."""
    postgres: PostgresSettings
    """The stack's own PostgreSQL (its image also runs the client tools in external mode)."""
    external_database: ExternalDatabase | None
    """The server of `database: external` (None in the other modes)."""
    backend_image: str
    """Backend image reference."""
    backend_port: int
    """Host port of the backend's API alone, through the proxy (plain HTTP)."""
    frontend_image: str | None
    """Frontend image reference, or None when the frontend is disabled."""
    frontend_port: int
    """Host port of the old frontend address: redirected to the app's origin (plain HTTP)."""
    http_port: int
    """Host port of plain HTTP: the app's origin, or (HTTPS on) the redirect to HTTPS."""
    proxy_image: str
    """The proxy's image reference (the proxy is in front in every mode)."""
    bind_address: str
    """Host address that published ports listen on."""
    encryption_key: pulumi.Output[str] | None
    """Operator-supplied Fernet key (secret), or None to generate one."""
    encryption_key_previous: pulumi.Output[str] | None
    """The Fernet key the data is encrypted with before a rotation (secret), or None."""
    encryption_key_rotation: int
    """How many times the generated Fernet key was rotated."""
    jwt_secret_key: pulumi.Output[str] | None
    """Operator-supplied JWT signing key (secret), or None to generate one."""
    jwt_secret_key_rotation: int
    """How many times the generated JWT signing key was rotated."""
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
    extra_env: BackendEnv
    """The operator's extra backend settings, plain and secret."""
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
    https: HttpsSettings | None
    """HTTPS through the proxy (`tlsHostnames` not empty), or None: backend and frontend publish plain HTTP."""


def load_settings(
    config: pulumi.Config | None = None, project: str | None = None, stack: str | None = None
) -> Settings:
    """Read and validate every `argusai:*` key; raise ConfigError on the first bad one."""
    config = config or pulumi.Config(NAMESPACE)
    project = project or pulumi.get_project()
    stack = stack or pulumi.get_stack()
    reject_unknown_keys()
    reader = Reader(config)

    database, postgres, external = read_database(reader)
    prefix = app.name_prefix(reader, project)
    bind_address = app.bind_address(reader)
    frontend_image = reader.image("frontendImage", allow_empty=True)
    backend_port = app.port(reader, "backendPort")
    frontend_port = app.port(reader, "frontendPort")
    http_port, https = read_https(reader)
    if https is None:  # the ports the proxy publishes for plain HTTP
        check("backendPort", backend_port != http_port, f"must differ from argusai:httpPort ({http_port})")
        for other, value in (("httpPort", http_port), ("backendPort", backend_port)):
            check(
                "frontendPort",
                not frontend_image or frontend_port != value,
                f"must differ from argusai:{other} ({value})",
            )
    cookie_secure, same_site = app.cookies(reader, https=https is not None)
    schema_gate = reader.boolean("schemaGate")
    encryption_key_previous = reader.secret("encryptionKeyPrevious", fernet_key_problem)
    encryption_key_rotation = reader.integer("encryptionKeyRotation", 0, app.KEY_ROTATION_MAX)
    # Re-encrypting the stored credentials runs the release's own code, as the schema gate does.
    for key, rotating in (
        ("encryptionKeyPrevious", encryption_key_previous is not None),
        ("encryptionKeyRotation", encryption_key_rotation > 0),
    ):
        check(
            key, schema_gate or not rotating, "re-encrypts with the release's own code: needs argusai:schemaGate true"
        )
    return Settings(
        project=project,
        stack=stack,
        naming=Naming(prefix=prefix, stack=stack, engine=app.docker_engine()),
        database=database,
        postgres=postgres,
        external_database=external,
        backend_image=reader.image("backendImage"),
        backend_port=backend_port,
        frontend_image=frontend_image or None,
        frontend_port=frontend_port,
        http_port=http_port,
        proxy_image=reader.image("proxyImage"),
        bind_address=bind_address,
        encryption_key=reader.secret("encryptionKey", fernet_key_problem),
        encryption_key_previous=encryption_key_previous,
        encryption_key_rotation=encryption_key_rotation,
        jwt_secret_key=reader.secret("jwtSecretKey", app.jwt_problem),
        jwt_secret_key_rotation=reader.integer("jwtSecretKeyRotation", 0, app.KEY_ROTATION_MAX),
        protect_data=reader.boolean("protectData"),
        log_level=reader.choice("logLevel", app.LOG_LEVELS, fold=str.upper),
        cors_origins=app.cors_origins(reader),
        cookie_secure=cookie_secure,
        cookie_same_site=same_site,
        extra_env=app.backend_env(reader),
        backup_enabled=reader.boolean("backupEnabled"),
        backup_interval_hours=reader.integer("backupIntervalHours", 1, app.BACKUP_INTERVAL_MAX_HOURS),
        backup_keep=reader.integer("backupKeep", 1, app.BACKUP_KEEP_MAX),
        registry_digests=reader.boolean("registryDigests"),
        schema_gate=schema_gate,
        https=https,
    )

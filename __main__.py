"""ArgusAI on Docker: SQLite by default, PostgreSQL on demand, secrets generated and kept, backups on."""

import pulumi

from components import backend
from components.backend import Backend, BackendArgs
from components.backup import Backup, BackupArgs
from components.database import Postgres, PostgresArgs
from components.frontend import Frontend, FrontendArgs
from components.network import Networks, NetworksArgs
from components.secrets import FINGERPRINTS_OUTPUT, AppSecrets, AppSecretsArgs
from components.settings import load_settings
from components.wiring import backend_env, backup_env, public_url

# 1. Settings: every key validated before anything is declared.
settings = load_settings()
naming = settings.naming

# 2. Secrets and networks.
secrets = AppSecrets(
    "secrets",
    AppSecretsArgs(
        postgres_password=settings.postgres_password,
        encryption_key=settings.encryption_key,
        jwt_secret_key=settings.jwt_secret_key,
        protect=settings.protect_data,
    ),
)
networks = Networks("network", NetworksArgs(naming=naming, database_network=settings.postgres))

# 3. Database: the PostgreSQL data volume in both modes (leaving PostgreSQL keeps its data), the server
#    only in PostgreSQL mode, where the database network exists.
pg = Postgres(
    "postgres",
    PostgresArgs(
        naming=naming,
        image=settings.postgres_image,
        user=settings.postgres_user,
        db=settings.postgres_db,
        password=secrets.postgres_password,
        network_name=networks.db.name if networks.db else None,
        protect_data=settings.protect_data,
        follow_registry=settings.registry_digests,
    ),
)
postgres = pg if pg.container else None
database_url = postgres.url if postgres else pulumi.Output.secret(backend.SQLITE_URL)

# 4. Application.
api = Backend(
    "backend",
    BackendArgs(
        naming=naming,
        image=settings.backend_image,
        env=backend_env(settings, database_url, secrets),
        app_network=networks.app.name,
        db_network=networks.db.name if networks.db else None,
        host_port=settings.backend_port,
        bind_address=settings.bind_address,
        protect_data=settings.protect_data,
        follow_registry=settings.registry_digests,
        depends_on=[postgres.container] if postgres else [],
    ),
)
web = None
if settings.frontend_image:
    web = Frontend(
        "frontend",
        FrontendArgs(
            naming=naming,
            image=settings.frontend_image,
            backend_url=f"http://{backend.ALIAS}:{backend.PORT}",
            app_network=networks.app.name,
            host_port=settings.frontend_port,
            bind_address=settings.bind_address,
            follow_registry=settings.registry_digests,
            depends_on=[api.container],
        ),
    )

# 5. Backups (the volume is kept when backups are turned off).
backups = Backup(
    "backup",
    BackupArgs(
        naming=naming,
        enabled=settings.backup_enabled,
        mode=settings.database,
        image_id=postgres.image.image_id if postgres else api.image.image_id,
        interval_hours=settings.backup_interval_hours,
        keep=settings.backup_keep,
        protect_data=settings.protect_data,
        env=backup_env(settings, secrets) if postgres else [],
        network=networks.db.name if networks.db else None,
        data_volume=None if postgres else api.volume.name,
        data_path=backend.DATA_PATH,
        # After the backend: its first dump already holds the migrated schema.
        depends_on=[postgres.container, api.container] if postgres else [api.container],
    ),
)

# 6. Outputs.
pulumi.export("databaseUrl", database_url)
pulumi.export("backendUrl", public_url(settings.bind_address, settings.backend_port))
pulumi.export("networkName", networks.app.name)
pulumi.export("dataVolume", api.volume.name)
if web:
    pulumi.export("frontendUrl", public_url(settings.bind_address, settings.frontend_port))
pulumi.export("pgdataVolume", pg.volume.name)
pulumi.export("backupVolume", backups.volume.name)
pulumi.export(FINGERPRINTS_OUTPUT, secrets.fingerprints)

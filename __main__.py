"""ArgusAI on Docker: SQLite by default, PostgreSQL on demand, secrets generated and kept, backups on."""

import pulumi

from components.backend import Backend, BackendArgs
from components.backend_start import backend_start
from components.backup import Backup, BackupArgs
from components.database import database_mode
from components.frontend import Frontend, FrontendArgs
from components.https.entry import entry_point
from components.network import Networks, NetworksArgs
from components.secrets import FINGERPRINTS_OUTPUT, AppSecrets, AppSecretsArgs
from components.settings import load_settings
from components.wiring import backend_env

# 1. Settings: every key validated before anything is declared; the database mode, the way in (plain
#    HTTP, or HTTPS through the proxy) and how a new backend starts (after the release's steps, or beside
#    them on a new stack) decided once.
settings = load_settings()
naming = settings.naming
Database = database_mode(settings)
entry = entry_point(settings)
Start = backend_start(naming)

# 2. Secrets and networks.
secrets = AppSecrets(
    "secrets",
    AppSecretsArgs(
        postgres_password=settings.postgres.password,
        postgres_password_rotation=settings.postgres.password_rotation,
        encryption_key=settings.encryption_key,
        encryption_key_previous=settings.encryption_key_previous,
        encryption_key_rotation=settings.encryption_key_rotation,
        jwt_secret_key=settings.jwt_secret_key,
        jwt_secret_key_rotation=settings.jwt_secret_key_rotation,
        protect=settings.protect_data,
        seed_admin=settings.schema_gate,
    ),
)
networks = Networks("network", NetworksArgs(naming=naming, database_network=Database.uses_database_network))

# 3. Backups volume (steps write their logs and pre-upgrade backups there), then the database: whatever the
#    mode needs (the PostgreSQL data volume in every mode).
backups = Backup(
    "backup",
    BackupArgs(
        naming=naming,
        enabled=settings.backup_enabled,
        interval_hours=settings.backup_interval_hours,
        keep=settings.backup_keep,
        protect_data=settings.protect_data,
    ),
)
database = Database.declare(settings, secrets, networks, backups.volume)

# 4. Application.
api = Backend(
    "backend",
    BackendArgs(
        naming=naming,
        image=settings.backend_image,
        env=backend_env(settings, database.backend_env, secrets, entry.origins()),
        app_network=networks.app.name,
        db_network=database.backend_network,
        protect_data=settings.protect_data,
        follow_registry=settings.registry_digests,
        files=database.files,
        volumes=database.python_volumes,
        before_serving=database.before_serving(
            backups.volume, gate=settings.schema_gate, admin_password=secrets.admin_password, start=Start(networks.app)
        ),
    ),
)
# What every other part of this version waits for: what must pass before the backend serves (the database, the
# release's steps) and the secrets' record; a stack either stops is left as it was. They start beside the backend.
prerequisites = [*api.prerequisites, secrets.record]
web = None
if settings.frontend_image:
    web = Frontend(
        "frontend",
        FrontendArgs(
            naming=naming,
            image=settings.frontend_image,
            backend_url=api.url,
            app_network=networks.app.name,
            log_volume=backups.volume.name,
            follow_registry=settings.registry_digests,
            depends_on=prerequisites,
        ),
    )

# 5. In front: the proxy, the one origin (plain HTTP, or HTTPS).
entry.declare(networks.app.name, api, web, prerequisites)

# 6. Backups, as the database mode takes them (the volume is kept when backups are off).
backups.run(database.backup_plan(api))

# 7. Outputs.
for key, value in {**database.exports(), **entry.exports()}.items():
    pulumi.export(key, value)
pulumi.export("networkName", networks.app.name)
pulumi.export("dataVolume", api.volume.name)
pulumi.export("backupVolume", backups.volume.name)
pulumi.export(FINGERPRINTS_OUTPUT, secrets.fingerprints)
pulumi.export("adminPassword", secrets.first_admin_password)

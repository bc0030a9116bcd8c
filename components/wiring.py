"""How settings and secrets turn into container environments and public URLs (no resources here)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pulumi

from components.secrets import AppSecrets
from components.settings import Settings

_ANY_ADDRESS = ("0.0.0.0", "::")  # noqa: S104 - names the wildcard addresses, binds nothing
_IPV6 = 6


def backend_env(
    settings: Settings, database_env: Sequence[pulumi.Input[str]], secrets: AppSecrets, origins: Sequence[str]
) -> list[pulumi.Input[str]]:
    """Return the backend's environment as NAME=value entries (secret ones as Outputs).

    `origins`: where browsers load the app from (the published URLs, or the HTTPS origins); CORS_ORIGINS
    holds them unless the operator set corsOrigins.
    """
    env: list[pulumi.Input[str]] = [
        *database_env,
        *secrets.app_env,
        f"LOG_LEVEL={settings.log_level}",
        f"COOKIE_SECURE={'true' if settings.cookie_secure else 'false'}",
        f"COOKIE_SAMESITE={settings.cookie_same_site}",
    ]
    env.append(f"CORS_ORIGINS={settings.cors_origins or ','.join(origins)}")
    extra = settings.extra_env
    env.extend(f"{name}={value}" for name, value in extra.plain)
    if extra.secret is not None:
        secret_list = extra.secret
        env.extend(secret_list.apply(lambda items, i=i: items[i]) for i in range(len(extra.secret_names)))
    return env


HTTP_DEFAULT_PORT = 80


def public_url(bind_address: str, port: int) -> str:
    """Return the URL an operator on the Docker host opens for a published port (other devices: the host's name)."""
    if bind_address in _ANY_ADDRESS:
        host = "localhost"
    elif ipaddress.ip_address(bind_address).version == _IPV6:
        host = f"[{bind_address}]"
    else:
        host = bind_address
    return f"http://{host}" if port == HTTP_DEFAULT_PORT else f"http://{host}:{port}"

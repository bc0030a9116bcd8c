"""How users reach the app: plain HTTP on the services' own ports, or HTTPS through the proxy.

Decided once (`tlsHostnames` empty or not) and carried by one object that owns what follows from it: which
host ports the backend and the frontend publish, the origins the backend's CORS allows, the proxy (with
HTTPS), and the URL outputs. `__main__.py` asks it and never tests the choice.
"""

from __future__ import annotations

import pulumi

from components.backend import Backend
from components.frontend import Frontend
from components.https.proxy import Proxy, ProxyArgs
from components.https.sources import certificate_source
from components.settings import Settings
from components.wiring import public_url


class Entry:
    """Plain HTTP (HTTPS off, the default): backend and frontend publish their own ports."""

    name = "http"

    def __init__(self, settings: Settings) -> None:
        """Serve as `settings` say."""
        self.settings = settings

    def backend_port(self) -> int | None:
        """Host port the backend publishes, or None."""
        return self.settings.backend_port

    def frontend_port(self) -> int | None:
        """Host port the frontend publishes, or None."""
        return self.settings.frontend_port

    def origins(self) -> list[str]:
        """The origins browsers load the app from (what CORS_ORIGINS holds unless corsOrigins is set)."""
        published = [self.settings.backend_port]
        if self.settings.frontend_image:
            published.insert(0, self.settings.frontend_port)
        return [public_url(self.settings.bind_address, port) for port in published]

    def declare(self, app_network: pulumi.Input[str], api: Backend, web: Frontend | None) -> None:
        """Declare what stands in front of the services (nothing)."""

    def exports(self) -> dict[str, pulumi.Input[object]]:
        """The URLs an operator on the Docker host opens."""
        settings = self.settings
        out: dict[str, pulumi.Input[object]] = {"backendUrl": public_url(settings.bind_address, settings.backend_port)}
        if settings.frontend_image:
            out["frontendUrl"] = public_url(settings.bind_address, settings.frontend_port)
        return out


class HttpsEntry(Entry):
    """HTTPS on: the proxy is the one origin and the only container publishing host ports."""

    name = "https"

    def __init__(self, settings: Settings) -> None:
        """Serve as `settings` say, with the certificate source they name."""
        super().__init__(settings)
        assert settings.https is not None  # noqa: S101 - chosen by entry_point
        self.https = settings.https
        self.source = certificate_source(settings.https.source, settings.naming)
        self.proxy: Proxy | None = None

    def backend_port(self) -> int | None:
        """None: reached only through the proxy."""
        return None

    def frontend_port(self) -> int | None:
        """None: reached only through the proxy."""
        return None

    def origins(self) -> list[str]:
        """The HTTPS origins of the hostnames."""
        return list(self.https.origins)

    def declare(self, app_network: pulumi.Input[str], api: Backend, web: Frontend | None) -> None:
        """Declare the proxy in front of the services."""
        settings = self.settings
        self.proxy = Proxy(
            "proxy",
            ProxyArgs(
                naming=settings.naming,
                https=self.https,
                source=self.source,
                backend=api.address,
                frontend=web.address if web is not None else None,
                app_network=app_network,
                bind_address=settings.bind_address,
                protect_data=settings.protect_data,
                follow_registry=settings.registry_digests,
                depends_on=[api.container, *([web.container] if web is not None else [])],
            ),
        )

    def exports(self) -> dict[str, pulumi.Input[object]]:
        """The stack's HTTPS URL, the proxy volume and what the certificate source exports."""
        assert self.proxy is not None  # noqa: S101 - declared first
        ca = {"tlsCaCertificate": self.proxy.ca_certificate} if self.proxy.ca_certificate is not None else {}
        return {"url": self.https.origins[0], "proxyVolume": self.proxy.volume.name, **self.source.exports(), **ca}


def entry_point(settings: Settings) -> Entry:
    """The object that carries how users reach this stack."""
    return HttpsEntry(settings) if settings.https is not None else Entry(settings)

"""How users reach the app: through the proxy, the one origin, over plain HTTP or HTTPS.

Decided once (`tlsHostnames` empty or not) and carried by one object that owns what follows from it: the
proxy's configuration and ports, the origins the backend's CORS allows, and the URL outputs. Neither the
backend nor the frontend publishes a port: every device reaches both through the proxy, on the origin it
loaded the page from, so the browser code needs no URL of the API (see `frontend.py`), cookies are
first-party and the WebSocket shares the page's origin. `__main__.py` asks the object and never tests the
choice.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi

from components.backend import Backend
from components.frontend import Frontend
from components.https import certs
from components.https.caddyfile import http_config, https_config, old_ports_config
from components.https.old_ports import OldPorts, OldPortsArgs
from components.https.proxy import Proxy, ProxyArgs
from components.https.sources import certificate_source
from components.settings import Settings
from components.wiring import public_url


class HttpEntry:
    """Plain HTTP (the default): the app on `httpPort`.

    The old frontend port redirects to it; the old backend port is still the API's (`components/https/old_ports.py`).
    """

    name = "http"

    def __init__(self, settings: Settings) -> None:
        """Serve as `settings` say."""
        self.settings = settings
        self.proxy: Proxy | None = None

    def _url(self, port: int) -> str:
        return public_url(self.settings.bind_address, port)

    def origins(self) -> list[str]:
        """The origins browsers load the app from (what CORS_ORIGINS holds unless corsOrigins is set)."""
        settings = self.settings
        old_frontend = [self._url(settings.frontend_port)] if settings.frontend_image else []
        return [self._url(settings.http_port), *old_frontend, self._url(settings.backend_port)]

    def _proxy_args(
        self, app_network: pulumi.Input[str], api: Backend, web: Frontend | None, after: Sequence[pulumi.Resource]
    ) -> ProxyArgs:
        settings = self.settings
        return ProxyArgs(
            naming=settings.naming,
            image=settings.proxy_image,
            config=http_config(settings.http_port, api.address, web.address if web is not None else None),
            ports=[settings.http_port],
            app_network=app_network,
            bind_address=settings.bind_address,
            protect_data=settings.protect_data,
            follow_registry=settings.registry_digests,
            depends_on=after,
        )

    def declare(
        self, app_network: pulumi.Input[str], api: Backend, web: Frontend | None, after: Sequence[pulumi.Resource]
    ) -> None:
        """Declare the proxy in front, created after `after` (beside the services), and the old ports."""
        self.proxy = Proxy("proxy", self._proxy_args(app_network, api, web, after))
        settings = self.settings
        frontend_port = settings.frontend_port if web is not None else None
        OldPorts(
            "old-ports",
            OldPortsArgs(
                naming=settings.naming,
                image=self.proxy.image.image_id,
                config=old_ports_config(settings.http_port, settings.backend_port, frontend_port, api.address),
                ports=[settings.backend_port, *([frontend_port] if frontend_port else [])],
                app_network=app_network,
                bind_address=settings.bind_address,
                # Stacks from before the proxy: the backend and the frontend published these ports, and free
                # them when they are replaced; the proxy in front published them on the last version.
                depends_on=[self.proxy.container, api.container, *([web.container] if web is not None else [])],
            ),
        )

    def exports(self) -> dict[str, pulumi.Input[object]]:
        """The app's URL (the server's own name or address replaces `localhost` on other devices), the API's."""
        assert self.proxy is not None  # noqa: S101 - declared first
        url = self._url(self.settings.http_port)
        out: dict[str, pulumi.Input[object]] = {
            "url": url,
            "backendUrl": self._url(self.settings.backend_port),
            "proxyVolume": self.proxy.volume.name,
        }
        if self.settings.frontend_image:
            out["frontendUrl"] = url
        return out


class HttpsEntry(HttpEntry):
    """HTTPS on: the app on every hostname, its certificate from one source; plain HTTP redirects to it."""

    name = "https"

    def __init__(self, settings: Settings) -> None:
        """Serve as `settings` say, with the certificate source they name."""
        super().__init__(settings)
        assert settings.https is not None  # noqa: S101 - chosen by entry_point
        self.https = settings.https
        self.source = certificate_source(settings.https.source, settings.naming)

    def origins(self) -> list[str]:
        """The HTTPS origins of the hostnames."""
        return list(self.https.origins)

    def _proxy_args(
        self, app_network: pulumi.Input[str], api: Backend, web: Frontend | None, after: Sequence[pulumi.Resource]
    ) -> ProxyArgs:
        settings, https = self.settings, self.https
        return ProxyArgs(
            naming=settings.naming,
            image=settings.proxy_image,
            config=https_config(https, self.source, api.address, web.address if web is not None else None),
            ports=[https.http_port, https.https_port],
            # Containers (an ACME server, the frontend's server side) reach the origin by its name.
            aliases=["proxy", *(name for name in https.hostnames if certs.hostname_kind(name) != "ip")],
            uploads=self.source.uploads(),
            ca_root=self.source.ca_root,
            app_network=app_network,
            bind_address=settings.bind_address,
            protect_data=settings.protect_data,
            follow_registry=settings.registry_digests,
            depends_on=after,
        )

    def declare(
        self, app_network: pulumi.Input[str], api: Backend, web: Frontend | None, after: Sequence[pulumi.Resource]
    ) -> None:
        """Declare the proxy in front of the services, created after `after` (beside the services)."""
        self.proxy = Proxy("proxy", self._proxy_args(app_network, api, web, after))

    def exports(self) -> dict[str, pulumi.Input[object]]:
        """The stack's HTTPS URL, the proxy volume and what the certificate source exports."""
        assert self.proxy is not None  # noqa: S101 - declared first
        ca = {"tlsCaCertificate": self.proxy.ca_certificate} if self.proxy.ca_certificate is not None else {}
        return {"url": self.https.origins[0], "proxyVolume": self.proxy.volume.name, **self.source.exports(), **ca}


def entry_point(settings: Settings) -> HttpEntry:
    """The object that carries how users reach this stack."""
    return HttpsEntry(settings) if settings.https is not None else HttpEntry(settings)

"""Where the proxy's certificate comes from: the operator's own, an ACME CA, or a CA of the stack's own.

The source is decided once, from the settings (`tlsSource`, `auto` resolved there), and carried by one object
that owns what follows from it: the Caddyfile lines, the files uploaded into the proxy, whether HSTS is sent,
what runs once the proxy is up, and the outputs. The proxy component asks it and never tests the source.

Creates (stack-ca only), under the proxy:
- `<name>-ca-container`: a one-shot container in the proxy's image that prints the stack CA's root
  certificate from the proxy volume and exits; pulumi-docker keeps what it printed (`attach` + `logs`:
  `container_logs`), exported as `tlsCaCertificate`. It runs again whenever the proxy is replaced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi
import pulumi_docker as docker

from components.docker_common import service_container
from components.naming import Naming
from components.settings import HttpsSettings

if TYPE_CHECKING:
    from components.proxy import Proxy

#: Where the proxy keeps what it makes (certificates, the stack CA): the image's data directory.
DATA_PATH = "/data"
#: Caddy's own CA ("local") in its data directory: made on first start, kept with the volume.
STACK_CA_ROOT = f"{DATA_PATH}/caddy/pki/authorities/local/root.crt"
OPERATOR_CERTIFICATE_PATH = "/etc/caddy/tls/certificate.pem"
OPERATOR_KEY_PATH = "/etc/caddy/tls/private-key.pem"
ACME_CA_PATH = "/etc/caddy/tls/acme-ca.pem"
# How long the CA printer waits for the proxy to have written the root (it does so at its first start).
CA_WAIT_SECONDS = 60
CA_POLL_SECONDS = 0.5
# The proxy checks its certificates for renewal this often (Caddy's default is 10 minutes), but at least
# six times per certificate lifetime, so a short lifetime is renewed in time.
RENEW_CHECKS_PER_LIFETIME = 6
DEFAULT_RENEW_CHECK_SECONDS = 600
SECONDS_PER_MINUTE = 60
ACME_RENEW_CHECK_SECONDS = 60
#: One year: what HSTS asks browsers to remember (no includeSubDomains: other hosts of the domain are not ours).
HSTS_MAX_AGE_SECONDS = 31536000


class CertificateSource:
    """What one certificate source means for the proxy."""

    name = "base"
    #: Whether browsers are told to use HTTPS only (HSTS): only for certificates every browser trusts.
    hsts = True

    def __init__(self, https: HttpsSettings, naming: Naming) -> None:
        """Serve `https` (the names, ports and this source's keys) for the stack `naming` names."""
        self.https = https
        self.naming = naming

    def global_options(self) -> list[str]:
        """Lines of the Caddyfile's global options block."""
        return []

    def site_tls(self) -> str | None:
        """The site's `tls` directive, or None for Caddy's default (ACME)."""
        return None

    def uploads(self) -> list[docker.ContainerUploadArgs]:
        """Files uploaded into the proxy before it starts."""
        return []

    def after_proxy(self, proxy: Proxy) -> None:
        """Declare, under `proxy`, what runs once it is up (nothing by default)."""

    def exports(self) -> dict[str, pulumi.Input[object]]:
        """Stack outputs of this source."""
        return {"tlsSource": self.name}


class OperatorCertificate(CertificateSource):
    """The operator's own certificate and key (checked in settings), uploaded into the proxy; never renewed."""

    name = "operator"

    def site_tls(self) -> str:
        """Serve the uploaded pair."""
        return f"tls {OPERATOR_CERTIFICATE_PATH} {OPERATOR_KEY_PATH}"

    def uploads(self) -> list[docker.ContainerUploadArgs]:
        """The chain and its key, secret in the state as they are in config."""
        assert self.https.certificate is not None  # noqa: S101 - set with the operator source
        assert self.https.private_key is not None  # noqa: S101 - set with the operator source
        return [
            docker.ContainerUploadArgs(file=OPERATOR_CERTIFICATE_PATH, content=self.https.certificate),
            docker.ContainerUploadArgs(file=OPERATOR_KEY_PATH, content=self.https.private_key),
        ]

    def exports(self) -> dict[str, pulumi.Input[object]]:
        """When the certificate expires: the operator renews it by hand."""
        summary = self.https.certificate_summary
        assert summary is not None  # noqa: S101 - set with the operator source
        return {**super().exports(), "tlsCertificateExpires": summary.not_after.isoformat()}


class AcmeCertificate(CertificateSource):
    """Certificates from an ACME CA (Let's Encrypt unless acmeDirectory), obtained and renewed by the proxy."""

    name = "acme"

    def global_options(self) -> list[str]:
        """Contact address, and a private ACME server with the CA of its own HTTPS certificate.

        Certificates are checked for renewal every minute rather than Caddy's ten: it costs a scan of the
        certificates in memory, and an ACME server issuing short-lived certificates is renewed in time.
        """
        lines = [f"renew_interval {ACME_RENEW_CHECK_SECONDS}s"]
        if self.https.acme_email:
            lines.append(f"email {self.https.acme_email}")
        if self.https.acme_directory:
            lines.append(f"acme_ca {self.https.acme_directory}")
        if self.https.acme_ca_cert:
            lines.append(f"acme_ca_root {ACME_CA_PATH}")
        return lines

    def uploads(self) -> list[docker.ContainerUploadArgs]:
        """The private ACME server's CA, when given."""
        if not self.https.acme_ca_cert:
            return []
        return [docker.ContainerUploadArgs(file=ACME_CA_PATH, content=self.https.acme_ca_cert)]


class StackCa(CertificateSource):
    """A CA of the stack's own (Caddy's `local` CA), made at the proxy's first start in the proxy volume.

    The volume is protected and retained like the data volumes, so the CA outlives a `destroy` of a
    protected stack and devices that trust it keep trusting the next deployment. Server certificates are
    short-lived and renewed by the proxy.
    """

    name = "stack-ca"
    # Devices trust this CA only once someone installed it; HSTS before that would lock them out.
    hsts = False

    def __init__(self, https: HttpsSettings, naming: Naming) -> None:
        """Serve `https` from a CA named after the stack; the CA printer is declared with the proxy."""
        super().__init__(https, naming)
        self.ca_name = f"ArgusAI {naming.base}"
        self._printer: docker.Container | None = None

    def renew_check_seconds(self) -> int:
        """How often the proxy looks for certificates to renew."""
        lifetime = self.https.certificate_minutes * SECONDS_PER_MINUTE
        return min(DEFAULT_RENEW_CHECK_SECONDS, max(1, lifetime // RENEW_CHECKS_PER_LIFETIME))

    def global_options(self) -> list[str]:
        """Name the CA after the stack (when it is made); never touch the container's own trust store."""
        return [
            "skip_install_trust",
            f"renew_interval {self.renew_check_seconds()}s",
            "pki {\n\t\tca local {\n"
            f'\t\t\tname "{self.ca_name}"\n'
            f'\t\t\troot_cn "{self.ca_name} Root CA"\n'
            f'\t\t\tintermediate_cn "{self.ca_name} Intermediate CA"\n'
            "\t\t}\n\t}",
        ]

    def site_tls(self) -> str:
        """Certificates from the local CA, with the configured lifetime."""
        return f"tls {{\n\t\tissuer internal {{\n\t\t\tlifetime {self.https.certificate_minutes}m\n\t\t}}\n\t}}"

    def after_proxy(self, proxy: Proxy) -> None:
        """Print the CA's root certificate once the proxy has made it; the provider keeps the output."""
        polls = round(CA_WAIT_SECONDS / CA_POLL_SECONDS)
        script = (
            f'n=0; until [ -s {STACK_CA_ROOT} ]; do n=$((n + 1)); [ "$n" -gt {polls} ] && exit 1; '
            f"sleep {CA_POLL_SECONDS}; done; cat {STACK_CA_ROOT}"
        )
        self._printer = service_container(
            f"{proxy.name}-ca-container",
            naming=proxy.naming,
            role="proxy-ca",
            grace_seconds=0,
            parent=proxy,
            depends_on=[proxy.container],
            restart="no",
            image=proxy.image.image_id,
            command=["sh", "-c", script],
            # Runs again whenever the proxy is replaced (a new image could have a new data layout).
            envs=[proxy.container.id.apply(lambda cid: f"ARGUSAI_PROXY={cid}")],
            volumes=[
                docker.ContainerVolumeArgs(volume_name=proxy.volume.name, container_path=DATA_PATH, read_only=True)
            ],
            attach=True,
            logs=True,
            must_run=False,
        )

    def exports(self) -> dict[str, pulumi.Input[object]]:
        """The CA's root certificate (PEM), for operators to install on their devices."""
        assert self._printer is not None  # noqa: S101 - declared by after_proxy
        return {**super().exports(), "tlsCaCertificate": self._printer.container_logs}


SOURCES: dict[str, type[CertificateSource]] = {
    source.name: source for source in (OperatorCertificate, AcmeCertificate, StackCa)
}


def certificate_source(https: HttpsSettings, naming: Naming) -> CertificateSource:
    """The object that carries the source decided in settings."""
    return SOURCES[https.source](https, naming)

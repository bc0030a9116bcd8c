"""Where the proxy's certificate comes from: the operator's own, an ACME CA, or a CA of the stack's own.

The source is decided in settings (`tlsSource`, `auto` resolved there) and carried by one object built from
that source's settings variant. It owns what follows from it: the Caddyfile lines, the files uploaded into
the proxy, whether HSTS is sent, whether the proxy prints a CA for devices to trust, and the outputs. It
declares nothing: the proxy asks it and never tests the source.
"""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from components.naming import Naming
from components.settings import TlsSource
from components.settings.https import AcmeCertificate, CertificateSettings, OperatorCertificate, StackCaCertificate

OPERATOR_CERTIFICATE_PATH = "/etc/caddy/tls/certificate.pem"
OPERATOR_KEY_PATH = "/etc/caddy/tls/private-key.pem"
ACME_CA_PATH = "/etc/caddy/tls/acme-ca.pem"
#: Caddy's own CA ("local"), inside the proxy's data directory: made on first start, kept with the volume.
STACK_CA_ROOT = "caddy/pki/authorities/local/root.crt"
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

    name: TlsSource
    #: Whether browsers are told to use HTTPS only (HSTS): only for certificates every browser trusts.
    hsts = True
    #: The stack CA's root certificate inside the proxy's data directory, for the proxy to print; None: none.
    ca_root: str | None = None

    def global_options(self) -> list[str]:
        """Lines of the Caddyfile's global options block."""
        return []

    def site_tls(self) -> str | None:
        """The site's `tls` directive, or None for Caddy's default (ACME)."""
        return None

    def uploads(self) -> list[docker.ContainerUploadArgs]:
        """Files uploaded into the proxy before it starts."""
        return []

    def exports(self) -> dict[str, pulumi.Input[object]]:
        """Stack outputs of this source."""
        return {"tlsSource": str(self.name)}


class OperatorSource(CertificateSource):
    """The operator's own certificate and key (checked in settings), uploaded into the proxy; never renewed."""

    name = TlsSource.OPERATOR

    def __init__(self, settings: OperatorCertificate) -> None:
        """Serve the checked pair."""
        self.settings = settings

    def site_tls(self) -> str:
        """Serve the uploaded pair."""
        return f"tls {OPERATOR_CERTIFICATE_PATH} {OPERATOR_KEY_PATH}"

    def uploads(self) -> list[docker.ContainerUploadArgs]:
        """The chain and its key, secret in the state as they are in config."""
        return [
            docker.ContainerUploadArgs(file=OPERATOR_CERTIFICATE_PATH, content=self.settings.certificate),
            docker.ContainerUploadArgs(file=OPERATOR_KEY_PATH, content=self.settings.private_key),
        ]

    def exports(self) -> dict[str, pulumi.Input[object]]:
        """When the certificate expires: the operator renews it by hand."""
        return {**super().exports(), "tlsCertificateExpires": self.settings.summary.not_after.isoformat()}


class AcmeSource(CertificateSource):
    """Certificates from an ACME CA (Let's Encrypt unless acmeDirectory), obtained and renewed by the proxy."""

    name = TlsSource.ACME

    def __init__(self, settings: AcmeCertificate) -> None:
        """Ask the CA `settings` name."""
        self.settings = settings

    def global_options(self) -> list[str]:
        """Contact address, and a private ACME server with the CA of its own HTTPS certificate.

        Certificates are checked for renewal every minute rather than Caddy's ten: it costs a scan of the
        certificates in memory, and an ACME server issuing short-lived certificates is renewed in time.
        """
        lines = [f"renew_interval {ACME_RENEW_CHECK_SECONDS}s"]
        if self.settings.email:
            lines.append(f"email {self.settings.email}")
        if self.settings.directory:
            lines.append(f"acme_ca {self.settings.directory}")
        if self.settings.ca_cert:
            lines.append(f"acme_ca_root {ACME_CA_PATH}")
        return lines

    def uploads(self) -> list[docker.ContainerUploadArgs]:
        """The private ACME server's CA, when given."""
        if not self.settings.ca_cert:
            return []
        return [docker.ContainerUploadArgs(file=ACME_CA_PATH, content=self.settings.ca_cert)]


class StackCaSource(CertificateSource):
    """A CA of the stack's own (Caddy's `local` CA), made at the proxy's first start in the proxy volume.

    The volume is protected and retained like the data volumes, so the CA outlives a `destroy` of a
    protected stack and devices that trust it keep trusting the next deployment. Server certificates are
    short-lived and renewed by the proxy; the proxy prints the root for the `tlsCaCertificate` output.
    """

    name = TlsSource.STACK_CA
    # Devices trust this CA only once someone installed it; HSTS before that would lock them out.
    hsts = False
    ca_root = STACK_CA_ROOT

    def __init__(self, settings: StackCaCertificate, naming: Naming) -> None:
        """Issue from a CA named after the stack."""
        self.settings = settings
        self.ca_name = f"ArgusAI {naming.base}"

    def renew_check_seconds(self) -> int:
        """How often the proxy looks for certificates to renew."""
        lifetime = self.settings.certificate_minutes * SECONDS_PER_MINUTE
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
        return f"tls {{\n\t\tissuer internal {{\n\t\t\tlifetime {self.settings.certificate_minutes}m\n\t\t}}\n\t}}"


def certificate_source(settings: CertificateSettings, naming: Naming) -> CertificateSource:
    """The object that carries the source settings decided."""
    if isinstance(settings, OperatorCertificate):
        return OperatorSource(settings)
    if isinstance(settings, AcmeCertificate):
        return AcmeSource(settings)
    return StackCaSource(settings, naming)

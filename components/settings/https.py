"""The HTTPS keys: the names users browse to, the ports, and where the certificate comes from.

`tlsHostnames` not empty turns HTTPS on. Every HTTPS key is validated whatever the mode, so a bad value
fails the day it is set, not the day HTTPS is turned on; the keys of one certificate source must be unset
with HTTPS off or another source. The source is resolved here (`auto` picks one) and carried as one typed
variant holding exactly that source's values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import pulumi

from components.https import certs
from components.settings.reader import ConfigError, Reader, check, is_secret

PORT_MIN, PORT_MAX = 1, 65535
HTTPS_DEFAULT_PORT = 443
#: Lifetime bounds of the stack CA's server certificates: shorter than Caddy's intermediate (7 days).
TLS_CERTIFICATE_MINUTES = (2, 10000)


class TlsSource(StrEnum):
    """The `tlsSource` key: where the proxy's certificate comes from."""

    AUTO = "auto"
    """Picked from the other keys and the names (resolved here, never carried further)."""
    OPERATOR = "operator"
    """The operator's own certificate and key."""
    ACME = "acme"
    """An ACME CA: Let's Encrypt, or `acmeDirectory`."""
    STACK_CA = "stack-ca"
    """A CA of the stack's own, made by the proxy."""


@dataclass(frozen=True)
class OperatorCertificate:
    """`tlsSource: operator`: the pair, checked (it covers every name, its chain is complete, it is valid)."""

    certificate: pulumi.Output[str]
    """The certificate chain (PEM; kept secret with its key)."""
    private_key: pulumi.Output[str]
    """The private key (secret)."""
    summary: certs.CertificateSummary
    """What the checks found (subject, names, expiry)."""


@dataclass(frozen=True)
class AcmeCertificate:
    """`tlsSource: acme`: certificates from an ACME CA, obtained and renewed by the proxy."""

    email: str | None
    """The contact address, or None."""
    directory: str | None
    """A private ACME server's directory URL, or None for Caddy's default (Let's Encrypt)."""
    ca_cert: str | None
    """PEM of the CA that signed the private ACME server's HTTPS certificate, or None."""


@dataclass(frozen=True)
class StackCaCertificate:
    """`tlsSource: stack-ca`: certificates from the stack's own CA."""

    certificate_minutes: int
    """Lifetime of the server certificates the stack's CA issues."""


CertificateSettings = OperatorCertificate | AcmeCertificate | StackCaCertificate


@dataclass(frozen=True)
class HttpsSettings:
    """HTTPS through the proxy: the names users browse to and where the certificate comes from."""

    hostnames: tuple[str, ...]
    """The names (or addresses) users browse to, lower case, in the order given; the first is the stack's URL."""
    https_port: int
    """Host port of HTTPS."""
    http_port: int
    """Host port of plain HTTP (redirects; ACME HTTP-01)."""
    source: CertificateSettings
    """The certificate source, with its own values."""

    @property
    def origins(self) -> tuple[str, ...]:
        """The HTTPS origins users browse to (the port only when it is not 443)."""
        port = "" if self.https_port == HTTPS_DEFAULT_PORT else f":{self.https_port}"
        return tuple(f"https://{certs.url_host(name)}{port}" for name in self.hostnames)


#: Keys that belong to one certificate source; unset with HTTPS off or another source.
SOURCE_KEYS: dict[str, TlsSource] = {
    "tlsCertificate": TlsSource.OPERATOR,
    "tlsPrivateKey": TlsSource.OPERATOR,
    "acmeEmail": TlsSource.ACME,
    "acmeDirectory": TlsSource.ACME,
    "acmeCaCert": TlsSource.ACME,
}


def _certs_check(call: Callable[[], Any]) -> Any:
    """Run a check of components.certs, turning its CertificateError into the ConfigError naming the key."""
    try:
        return call()
    except certs.CertificateError as exc:
        raise ConfigError(exc.key, exc.message) from None


def _resolve(source: TlsSource, hostnames: tuple[str, ...], has_certificate: bool, has_directory: bool) -> TlsSource:
    """`auto` picks operator, acme or stack-ca from the other keys and the names; the others are checked."""
    kinds = {name: certs.hostname_kind(name) for name in hostnames}
    private = [name for name, kind in kinds.items() if kind != "public"]
    if source is TlsSource.AUTO:
        if has_certificate:
            return TlsSource.OPERATOR
        if has_directory or not private:
            return TlsSource.ACME
        if len(private) == len(hostnames):
            return TlsSource.STACK_CA
        raise ConfigError(
            "tlsHostnames",
            f"mixes public names with names no public CA signs ({', '.join(private)}); list one kind, or set "
            "argusai:tlsSource (stack-ca covers both) or your own argusai:tlsCertificate",
        )
    check(
        "tlsSource",
        source is not TlsSource.ACME or has_directory or not private,
        f"acme with Let's Encrypt cannot cover {', '.join(private)} (no public CA signs such names); use stack-ca, "
        "your own certificate, or a private ACME server (argusai:acmeDirectory)",
    )
    return source


def _operator(present: dict[str, str], hostnames: tuple[str, ...]) -> OperatorCertificate:
    for key in ("tlsCertificate", "tlsPrivateKey"):
        check(key, bool(present[key]), "must be set with argusai:tlsSource operator (PEM)")
    check(
        "tlsPrivateKey",
        is_secret("tlsPrivateKey"),
        "is a private key: set it with `pulumi config set --secret argusai:tlsPrivateKey < key.pem`",
    )
    summary = _certs_check(
        lambda: certs.check_certificate_pair(present["tlsCertificate"], present["tlsPrivateKey"], hostnames)
    )
    return OperatorCertificate(
        certificate=pulumi.Output.secret(present["tlsCertificate"] + "\n"),
        private_key=pulumi.Output.secret(present["tlsPrivateKey"] + "\n"),
        summary=summary,
    )


def _acme(present: dict[str, str]) -> AcmeCertificate:
    directory = present["acmeDirectory"] or None
    if directory is not None:
        parts = urlsplit(directory)
        check(
            "acmeDirectory",
            parts.scheme == "https" and bool(parts.hostname),
            f"must be an https:// URL of an ACME directory; got '{directory}'",
        )
    if present["acmeEmail"]:
        _certs_check(lambda: certs.check_email(present["acmeEmail"]))
    ca_cert = present["acmeCaCert"] or None
    if ca_cert is not None:
        check("acmeCaCert", directory is not None, "is used only with a private ACME server (argusai:acmeDirectory)")
        _certs_check(lambda: certs.check_ca_bundle(ca_cert, "acmeCaCert"))
    return AcmeCertificate(
        email=present["acmeEmail"] or None, directory=directory, ca_cert=ca_cert + "\n" if ca_cert else None
    )


def read_https(reader: Reader) -> tuple[int, HttpsSettings | None]:
    """`httpPort`, and the HTTPS keys, every one validated; no HTTPS (and no source key set) without names."""
    names = [name.strip() for name in reader.string_list("tlsHostnames")]
    https_port = reader.integer("httpsPort", PORT_MIN, PORT_MAX)
    http_port = reader.integer("httpPort", PORT_MIN, PORT_MAX)
    check("httpPort", http_port != https_port, f"must differ from argusai:httpsPort ({https_port})")
    chosen = TlsSource(reader.choice("tlsSource", tuple(TlsSource), fold=str.lower))
    minutes = reader.integer("tlsCertificateMinutes", *TLS_CERTIFICATE_MINUTES)
    present = {key: reader.stripped(key) for key in SOURCE_KEYS}
    if not names:
        for key, value in present.items():
            check(key, not value, "is used only with HTTPS on (argusai:tlsHostnames); unset it")
        return http_port, None
    hostnames = tuple(_certs_check(lambda name=name: certs.check_hostname(name)) for name in names)
    check("tlsHostnames", len(set(hostnames)) == len(hostnames), "lists a name twice")
    source = _resolve(chosen, hostnames, bool(present["tlsCertificate"]), bool(present["acmeDirectory"]))
    for key, value in present.items():
        owner = SOURCE_KEYS[key]
        check(key, not value or owner is source, f"is used only with argusai:tlsSource {owner}; unset it")
    variants: dict[TlsSource, Callable[[], CertificateSettings]] = {
        TlsSource.OPERATOR: lambda: _operator(present, hostnames),
        TlsSource.ACME: lambda: _acme(present),
        TlsSource.STACK_CA: lambda: StackCaCertificate(certificate_minutes=minutes),
    }
    return http_port, HttpsSettings(
        hostnames=hostnames, https_port=https_port, http_port=http_port, source=variants[source]()
    )

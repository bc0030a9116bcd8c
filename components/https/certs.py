"""Checks of the operator's TLS inputs, run before anything is deployed: hostnames, certificate, key, ACME CA, e-mail.

The operator's chain (`tlsCertificate`) is judged by cryptography's X.509 verifier (`cryptography.x509.verification`)
for each host name: it builds the path to a root (of the system trust store, or a self-signed one in the file) and
checks the signatures, validity, host names, and the RFC 5280 / CA/Browser Forum profile browsers apply, relaxed
only where browsers accept more (`_CA_POLICY`, `_EE_POLICY`). The checks here run first where they say more than
its error would: the PEM text, the key (which the verifier never sees), a server certificate that is a CA or not
for servers, dates, the names not covered, and the file's order, naming the missing or wrong issuer. CA bundles
(`acmeCaCert`) must hold CA certificates only.

Every function here is pure (no Pulumi, no network, nothing written) and refuses a bad value with
:class:`CertificateError`, naming the short config key and what is allowed; `components.settings` turns it
into its `ConfigError`. This module must not import settings (settings imports it).

Messages may name a certificate's subject, subject alternative names and dates, never key material nor a
whole PEM: they end up in terminals and CI logs.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Literal, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import Criticality, ExtensionPolicy, Policy, PolicyBuilder, Store, VerificationError

# Short config keys (the `argusai:` namespace is added by settings).
CERTIFICATE_KEY = "tlsCertificate"
PRIVATE_KEY_KEY = "tlsPrivateKey"
HOSTNAMES_KEY = "tlsHostnames"
EMAIL_KEY = "acmeEmail"

#: RFC 1035: a label is at most 63 octets, a name at most 253 characters in its dotted text form.
LABEL_MAX = 63
DNS_NAME_MAX = 253
#: RFC 5321's limit on a forward path, the usual bound on an address.
EMAIL_MAX = 254
#: Below 2048 bits browsers and the CA/Browser Forum refuse RSA.
RSA_MIN_BITS = 2048
#: The EC curves browsers accept in server certificates (curve name -> NIST name for messages).
ALLOWED_CURVES: Mapping[str, str] = {"secp256r1": "P-256", "secp384r1": "P-384"}
#: Suffixes no public CA will sign (RFC 6761/6762/8375 special-use names, ICANN's .internal, and the
#: ones home routers hand out); a name equal to or under one of them is `private`.
PRIVATE_SUFFIXES = (
    "localhost",
    "lan",
    "internal",
    "local",
    "home.arpa",
    "test",
    "example",
    "invalid",
    "corp",
    "home",
)
#: Which keys are allowed, for messages.
ALLOWED_KEYS = "RSA of at least 2048 bits, or EC P-256/P-384"
#: A PEM block that may sit next to the key: `openssl ecparam -genkey` writes it before the key, and Caddy
#: (Go's tls.X509KeyPair) skips it.
EC_PARAMETERS = "EC PARAMETERS"
#: Longest piece of an operator's value echoed in a message (hostnames, e-mail).
SHOWN_MAX = 80

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# A whole PEM block; the back-reference makes END match its own BEGIN.
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)
_PEM_HINT = "PEM (-----BEGIN CERTIFICATE----- blocks)"
_KEY_FORMATS = "PKCS#8 'BEGIN PRIVATE KEY', or 'BEGIN RSA PRIVATE KEY' / 'BEGIN EC PRIVATE KEY'"
_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}
# Trust-store files larger than this are not certificate bundles (the system bundle is about 200 kB).
_STORE_FILE_MAX = 8 * 1024 * 1024
# The verifier's wrapping around its reason: "validation failed: candidates exhausted: <reason> (encountered
# processing <Certificate(...)>)", and "Python extension validator failed: ValueError: " for our validators.
_VERIFIER_WRAPPING = re.compile(
    r"^(?:validation failed: |candidates exhausted: |Python extension validator failed: \w+: )+"
    r"|\s*\(encountered processing .*\)$",
    re.DOTALL,
)
# Verifier reasons (by how they start) reworded where the verifier's own text is a debug dump or too terse.
_VERIFIER_REASONS: Mapping[str, str] = {
    "Forbidden signature algorithm": "a certificate is signed with an algorithm browsers refuse (they accept RSA "
    "PKCS#1 v1.5 or PSS, and ECDSA, with SHA-256, SHA-384 or SHA-512)",
    "Forbidden public key algorithm": "a CA's key is of a type browsers refuse (they accept RSA and EC keys)",
    "RSA key is too weak": f"a CA's RSA key is shorter than {RSA_MIN_BITS} bits",
    "cert is not valid at validation time": "a certificate on the path, such as the trusted root it ends in, is "
    "expired or not yet valid",
    "certificate must be an X509v3": "a certificate on the path is X.509 v1 (made without extensions, e.g. by "
    "`openssl x509 -req -signkey`), which cannot say it is a CA; make the CA with `openssl req -x509`",
}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Extension = TypeVar("_Extension", bound=x509.ExtensionType)


class CertificateError(Exception):
    """A TLS input (hostname, certificate, key, CA bundle, e-mail) is refused."""

    def __init__(self, key: str, message: str) -> None:
        """Name the short config key (e.g. `tlsCertificate`) and what is wrong and allowed."""
        self.key = key
        self.message = message
        super().__init__(f"'{key}' {message}")


@dataclass(frozen=True)
class CertificateSummary:
    """What the checked server certificate says, for plans and messages (nothing secret)."""

    subject: str
    """The server certificate's subject (RFC 4514), empty when it has none."""
    sans: tuple[str, ...]
    """Its subject alternative names: DNS names and IP addresses, in the certificate's order."""
    not_after: datetime
    """When it expires (UTC)."""
    self_signed_chain: bool
    """True when the chain ends in a root included in the file that the trust store does not hold (a private
    CA or a self-signed certificate: clients must be told to trust it); False when a trusted root issued it."""
    issuer: str
    """The server certificate's issuer (RFC 4514)."""


# --- hostnames -------------------------------------------------------------------------------------------


def _shown(value: str) -> str:
    """An operator's value, quoted and cut short, for a message."""
    return repr(value if len(value) <= SHOWN_MAX else value[:SHOWN_MAX] + "...")


def _ip_address(text: str) -> IPAddress | None:
    """The IP address `text` spells (IPv6 optionally in brackets), or None when it is not one."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _dns_name_problem(name: str) -> str | None:
    """Why lower-case `name` is not a DNS host name, or None when it is one."""
    if not name.isascii():
        return "must be ASCII; write an internationalised name in its xn-- (punycode) form"
    if len(name) > DNS_NAME_MAX:
        return f"is {len(name)} characters long; a DNS name has at most {DNS_NAME_MAX}"
    labels = name.split(".")
    if not all(_LABEL.match(label) for label in labels):
        return (
            f"is not a DNS name: each dot-separated label must be 1-{LABEL_MAX} letters, digits or hyphens, "
            "not starting or ending with a hyphen (no empty labels, no trailing dot)"
        )
    # An all-digit last label is how a mistyped IPv4 address (e.g. 192.168.1.300) looks; no TLD is numeric.
    if labels[-1].isdigit():
        return "is neither an IP address nor a DNS name (a name's last label cannot be all digits)"
    return None


def check_hostname(name: str) -> str:
    """Return `name` normalised (lower case; an IP address in its canonical form, IPv6 without brackets).

    Raises:
        CertificateError: (`tlsHostnames`) `name` is not a DNS host name nor an IP address, or is a wildcard.
    """
    if not isinstance(name, str) or not name.strip():
        raise CertificateError(HOSTNAMES_KEY, "must list host names (DNS names or IP addresses); got an empty one")
    text = name.strip().lower()
    if "%" in text:
        # A zone (fe80::1%eth0) is local to one host; certificates cannot name it.
        raise CertificateError(HOSTNAMES_KEY, f"must not carry an IPv6 zone (%...); got {_shown(name)}")
    address = _ip_address(text)
    if address is not None:
        return address.compressed
    if text.startswith("*."):
        # Users browse to real names; a wildcard hostname would tell the proxy nothing about which to serve.
        raise CertificateError(
            HOSTNAMES_KEY,
            f"must name the hosts users browse to, not a wildcard; got {_shown(name)} "
            "(list each name; a wildcard certificate may still cover them)",
        )
    problem = _dns_name_problem(text)
    if problem is not None:
        raise CertificateError(HOSTNAMES_KEY, f"entry {_shown(name)} {problem}")
    return text


def hostname_kind(name: str) -> Literal["public", "private", "ip"]:
    """Whether a public CA could sign `name`: `public`, `private` (a name none will sign) or `ip`.

    `private` names are `localhost` and names under it, single-label names, and names under the special-use
    and home-network suffixes in :data:`PRIVATE_SUFFIXES`. Public CAs do not sign IP addresses for
    self-hosters either, hence `ip` of its own.

    Raises:
        CertificateError: (`tlsHostnames`) as :func:`check_hostname`.
    """
    host = check_hostname(name)
    if _ip_address(host) is not None:
        return "ip"
    if "." not in host or any(host == suffix or host.endswith(f".{suffix}") for suffix in PRIVATE_SUFFIXES):
        return "private"
    return "public"


# --- PEM --------------------------------------------------------------------------------------------------


def _pem_blocks(text: str) -> tuple[list[tuple[str, str]], str]:
    """The PEM blocks of `text` as (type, whole block), and what is left outside them (stripped)."""
    text = text.replace("\r\n", "\n")
    blocks = [(match.group(1), match.group(0)) for match in _PEM_BLOCK.finditer(text)]
    return blocks, _PEM_BLOCK.sub("", text).strip()


def _leftover_problem(rest: str, only: str) -> str | None:
    """Why text outside the PEM blocks is refused (never quoting it: it may be part of a key)."""
    if "-----BEGIN" in rest or "-----END" in rest:
        return "has a BEGIN line without its matching END line (or the reverse); was the paste cut short?"
    if rest:
        return (
            f"holds text outside its PEM blocks; give only {only} (remove lines such as 'subject=' or 'Bag Attributes')"
        )
    return None


def _describe(index: int, cert: x509.Certificate) -> str:
    """`the server certificate (CN=...)` for the first certificate of a file, `certificate N (CN=...)` after."""
    subject = cert.subject.rfc4514_string() or "no subject"
    return f"the server certificate ({subject})" if index == 0 else f"certificate {index + 1} ({subject})"


def _read_certificates(pem: str, key: str, key_advice: str) -> tuple[x509.Certificate, ...]:
    """Parse a value that must hold PEM certificates only, at least one."""
    if not isinstance(pem, str) or not pem.strip():
        raise CertificateError(key, f"is empty; give {_PEM_HINT}")
    blocks, rest = _pem_blocks(pem)
    # Checked on the raw text too, so a truncated key (BEGIN without END) is named for what it is.
    if "PRIVATE KEY" in pem or any(kind.endswith("PRIVATE KEY") for kind, _ in blocks):
        raise CertificateError(key, f"holds a private key; {key_advice}")
    if not blocks and "-----" not in rest:
        raise CertificateError(key, f"must be {_PEM_HINT}")
    problem = _leftover_problem(rest, "-----BEGIN CERTIFICATE----- blocks")
    if problem is not None:
        raise CertificateError(key, problem)
    others = sorted({kind for kind, _ in blocks if kind != "CERTIFICATE"})
    if others:
        raise CertificateError(key, f"holds {', '.join(others)} block(s); only CERTIFICATE blocks are allowed")
    certificates = []
    for index, (_, block) in enumerate(blocks):
        try:
            cert = x509.load_pem_x509_certificate(block.encode())
            # Parsed lazily by cryptography: a malformed name or extension surfaces here, not in a later check.
            cert.subject.rfc4514_string()
            cert.issuer.rfc4514_string()
            list(cert.extensions)
        except ValueError:
            raise CertificateError(key, f"certificate {index + 1} does not parse as an X.509 certificate") from None
        certificates.append(cert)
    return tuple(certificates)


def _read_private_key(pem: str) -> PrivateKeyTypes:
    """Parse `tlsPrivateKey`: one unencrypted PEM private key (an EC PARAMETERS block may precede it)."""
    if not isinstance(pem, str) or not pem.strip():
        raise CertificateError(PRIVATE_KEY_KEY, f"is empty; give the server certificate's private key ({_KEY_FORMATS})")
    blocks, rest = _pem_blocks(pem)
    kinds = [kind for kind, _ in blocks]
    if "CERTIFICATE" in kinds or "TRUSTED CERTIFICATE" in kinds:
        raise CertificateError(
            PRIVATE_KEY_KEY,
            f"holds a certificate; certificates belong in {CERTIFICATE_KEY}, give only the private key here",
        )
    if not blocks and "-----" not in rest:
        raise CertificateError(PRIVATE_KEY_KEY, f"must be a PEM private key ({_KEY_FORMATS})")
    problem = _leftover_problem(rest, "the private key block")
    if problem is not None:
        raise CertificateError(PRIVATE_KEY_KEY, problem)
    keys = [block for kind, block in blocks if kind.endswith("PRIVATE KEY")]
    others = sorted({kind for kind in kinds if not kind.endswith("PRIVATE KEY") and kind != EC_PARAMETERS})
    if others:
        raise CertificateError(
            PRIVATE_KEY_KEY, f"holds {', '.join(others)} block(s); give only the private key ({_KEY_FORMATS})"
        )
    if not keys:
        raise CertificateError(PRIVATE_KEY_KEY, f"holds no private key; give one ({_KEY_FORMATS})")
    if len(keys) > 1:
        raise CertificateError(
            PRIVATE_KEY_KEY,
            f"holds {len(keys)} private keys; give exactly one, the key the server certificate was issued for",
        )
    block = keys[0]
    encrypted = CertificateError(
        PRIVATE_KEY_KEY,
        "is encrypted with a passphrase, and Caddy cannot read an encrypted key; decrypt it with "
        "`openssl pkey -in <encrypted-key-file> -out <key-file>` and give the decrypted key (as a secret)",
    )
    # PKCS#8 says so in its type, the traditional OpenSSL format in a Proc-Type header.
    if block.startswith("-----BEGIN ENCRYPTED PRIVATE KEY") or "Proc-Type: 4,ENCRYPTED" in block:
        raise encrypted
    if block.startswith("-----BEGIN OPENSSH PRIVATE KEY"):
        raise CertificateError(
            PRIVATE_KEY_KEY,
            f"is in OpenSSH's format, which Caddy cannot read; convert it to PKCS#8 "
            f"(`ssh-keygen -p -m PKCS8 -f <key-file>`) and give {ALLOWED_KEYS}",
        )
    try:
        return serialization.load_pem_private_key(block.encode(), password=None)
    except TypeError:
        # cryptography's way of saying "encrypted, and no password given".
        raise encrypted from None
    except (ValueError, UnsupportedAlgorithm):
        # The library's message is dropped: it is about the key's bytes.
        raise CertificateError(
            PRIVATE_KEY_KEY, f"does not parse as a PEM private key; is it complete and unmodified? ({_KEY_FORMATS})"
        ) from None


def _check_key_type(private_key: PrivateKeyTypes) -> None:
    """Refuse keys browsers do not accept in a server certificate."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < RSA_MIN_BITS:
            raise CertificateError(
                PRIVATE_KEY_KEY, f"is a {private_key.key_size}-bit RSA key, too weak for browsers; use {ALLOWED_KEYS}"
            )
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        if private_key.curve.name not in ALLOWED_CURVES:
            raise CertificateError(
                PRIVATE_KEY_KEY,
                f"uses the EC curve {private_key.curve.name}, which browsers do not accept; use {ALLOWED_KEYS}",
            )
    elif isinstance(private_key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        # Valid for TLS on paper, but no browser accepts an EdDSA server certificate.
        name = "Ed25519" if isinstance(private_key, ed25519.Ed25519PrivateKey) else "Ed448"
        raise CertificateError(PRIVATE_KEY_KEY, f"is an {name} key, which browsers do not accept; use {ALLOWED_KEYS}")
    else:
        raise CertificateError(PRIVATE_KEY_KEY, f"is neither an RSA nor an EC key; use {ALLOWED_KEYS}")


# --- certificate pre-checks -------------------------------------------------------------------------------


def _extension(cert: x509.Certificate, kind: type[_Extension]) -> _Extension | None:
    """The certificate's extension of this class, or None."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert: x509.Certificate) -> bool:
    """BasicConstraints CA:TRUE, or (no BasicConstraints at all) an old self-signed v1-style root."""
    constraints = _extension(cert, x509.BasicConstraints)
    return constraints.ca if constraints is not None else _issued_by(cert, cert)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` signed `cert`: its subject is `cert`'s issuer and its key verifies the signature."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _check_key_matches(private_key: PrivateKeyTypes, leaf: x509.Certificate) -> None:
    """Refuse a key that is not the one the server certificate was issued for."""
    try:
        matches = leaf.public_key() == private_key.public_key()
    except (ValueError, UnsupportedAlgorithm):
        # A key type cryptography cannot load in the certificate: not the (loaded) private key's.
        matches = False
    if not matches:
        raise CertificateError(
            PRIVATE_KEY_KEY,
            f"does not match {_describe(0, leaf)}, the first certificate of {CERTIFICATE_KEY}: give the key that "
            "certificate was issued for (or the certificate issued for this key first)",
        )


def _utc(now: datetime | None) -> datetime:
    """`now` in UTC (a naive time is taken as UTC); the current time when None."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


def _date(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


def _check_dates(index: int, cert: x509.Certificate, moment: datetime) -> None:
    """Refuse a certificate not valid at `moment`, naming it and its dates (the verifier says neither)."""
    if moment < cert.not_valid_before_utc:
        raise CertificateError(
            CERTIFICATE_KEY,
            f"{_describe(index, cert)} is not valid yet: it is valid from {_date(cert.not_valid_before_utc)} "
            f"(now {_date(moment)}); check the clock, or wait",
        )
    if moment > cert.not_valid_after_utc:
        raise CertificateError(
            CERTIFICATE_KEY,
            f"{_describe(index, cert)} expired on {_date(cert.not_valid_after_utc)} (now {_date(moment)}); renew it",
        )


def _check_server_use(leaf: x509.Certificate) -> None:
    """Refuse a first certificate that cannot serve TLS: a CA, or one whose EKU lacks serverAuth."""
    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        # Firefox refuses it outright (MOZILLA_PKIX_ERROR_CA_CERT_USED_AS_END_ENTITY).
        raise CertificateError(
            CERTIFICATE_KEY,
            f"starts with a CA certificate ({leaf.subject.rfc4514_string() or 'no subject'}, basicConstraints "
            "CA:TRUE), which browsers refuse as a server certificate; put the server certificate first, then "
            "its intermediates (a self-signed one must be made with basicConstraints CA:FALSE)",
        )
    usage = _extension(leaf, x509.ExtendedKeyUsage)
    if usage is not None and ExtendedKeyUsageOID.SERVER_AUTH not in usage:
        names = ", ".join(_EKU_NAMES.get(oid, oid.dotted_string) for oid in usage) or "nothing"
        raise CertificateError(
            CERTIFICATE_KEY,
            f"{_describe(0, leaf)} is not for TLS servers: its extended key usage allows {names} but not "
            "serverAuth; have it issued for server authentication",
        )


def _covers(host: str, dns_names: Sequence[str], addresses: Sequence[object]) -> bool:
    """Whether the SANs cover `host` (normalised) the way browsers match them."""
    address = _ip_address(host)
    if address is not None:
        # Browsers match an address against IP SANs only, never against a DNS SAN spelling it.
        return address in addresses
    first, _, parent = host.partition(".")
    for name in dns_names:
        if name == host:
            return True
        # `*.example.com` covers exactly one label; a wildcard right under a TLD (`*.lan`) covers nothing,
        # as browsers refuse those (the verifier would match it).
        if name.startswith("*.") and "." in name[2:] and parent == name[2:] and first:
            return True
    return False


def _check_coverage(leaf: x509.Certificate, hosts: Sequence[str]) -> tuple[str, ...]:
    """Refuse a server certificate that does not name every host, naming those it misses; return its SANs."""
    sans = _extension(leaf, x509.SubjectAlternativeName)
    if sans is None:
        raise CertificateError(
            CERTIFICATE_KEY,
            f"{_describe(0, leaf)} has no subjectAltName; browsers ignore the Common Name, so it must be "
            f"issued with the {HOSTNAMES_KEY} as DNS (or IP) subject alternative names",
        )
    dns_sans = sans.get_values_for_type(x509.DNSName)
    addresses = sans.get_values_for_type(x509.IPAddress)
    dns_names = [name.lower() for name in dns_sans]
    missing = [host for host in hosts if not _covers(host, dns_names, addresses)]
    if missing:
        listed = ", ".join([f"DNS:{name}" for name in dns_sans] + [f"IP:{address}" for address in addresses])
        raise CertificateError(
            CERTIFICATE_KEY,
            f"does not cover {', '.join(missing)} (from {HOSTNAMES_KEY}): the server certificate names "
            f"{listed or 'no DNS names or IP addresses'} (browsers match only these subject alternative "
            "names, not the Common Name; a wildcard covers exactly one label)",
        )
    return (*dns_sans, *(str(address) for address in addresses))


def _check_file_order(chain: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate], moment: datetime) -> None:
    """Refuse a file that is not the server certificate, then each certificate's issuer, up to a root.

    The verifier takes the intermediates in any order and, finding no path, does not say which issuer is
    missing; servers send the file as it is, and TLS 1.2 clients may rely on that order. The walk stops at the
    first certificate a trusted root issued or that is a root itself (self-signed): certificates after it are
    not looked at, as clients build their own path from there (e.g. a cross-signed root some CAs still append).
    Each issuer walked through must be valid at `moment`.
    """
    for index, cert in enumerate(chain):
        if _issued_by(cert, cert) or any(_issued_by(cert, root) for root in trusted):
            return
        if index + 1 == len(chain):
            raise CertificateError(
                CERTIFICATE_KEY,
                f"has an incomplete chain: {_describe(index, cert)} was issued by "
                f"'{cert.issuer.rfc4514_string()}', which is neither in the file nor a trusted root; add the "
                "intermediate certificate(s) after the server certificate (for a private CA, its root last)",
            )
        issuer = chain[index + 1]
        if not _issued_by(cert, issuer):
            detail = (
                "has its issuer's name but a different key (was the intermediate reissued?)"
                if cert.issuer == issuer.subject
                else f"is not its issuer '{cert.issuer.rfc4514_string()}'"
            )
            raise CertificateError(
                CERTIFICATE_KEY,
                f"is not a chain in order: {_describe(index + 1, issuer)}, which follows {_describe(index, cert)}, "
                f"{detail}; give the server certificate first, then each certificate's issuer after it",
            )
        _check_dates(index + 1, issuer, moment)


# --- the verifier -------------------------------------------------------------------------------------------


def _ca_basic_constraints(_policy: Policy, _cert: x509.Certificate, constraints: x509.BasicConstraints) -> None:
    """A CA must say it is one (the verifier still checks its path length)."""
    if not constraints.ca:
        raise ValueError("basicConstraints.cA must be asserted in a CA certificate")


def _ca_key_usage(_policy: Policy, _cert: x509.Certificate, usage: x509.KeyUsage | None) -> None:
    """A CA's keyUsage, when it has one, must allow signing certificates."""
    if usage is not None and not usage.key_cert_sign:
        raise ValueError("keyUsage.keyCertSign must be asserted in a CA certificate")


#: The verifier's CA profile, relaxed where browsers (Chrome, Firefox) accept more and CAs have it: no keyUsage
#: (CAs made with `openssl req -x509` and OpenSSL's default `v3_ca`, and system-store roots such as Chunghwa's
#: ePKI root and Go Daddy's Class 2), and basicConstraints not marked critical (the same roots).
_CA_POLICY = (
    ExtensionPolicy.webpki_defaults_ca()
    .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _ca_basic_constraints)
    .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _ca_key_usage)
)
#: The verifier's server-certificate profile without its demand for an authorityKeyIdentifier, which browsers
#: do not make: self-signed certificates and those of many private CAs have none.
_EE_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, None
)


def _verifier_reason(error: VerificationError) -> str:
    """The verifier's reason for refusing, unwrapped, or reworded where its text is not for operators."""
    reason = _VERIFIER_WRAPPING.sub("", str(error))
    return next((text for start, text in _VERIFIER_REASONS.items() if reason.startswith(start)), reason)


def _verify(
    chain: Sequence[x509.Certificate], trusted: Sequence[x509.Certificate], hosts: Sequence[str], moment: datetime
) -> list[x509.Certificate]:
    """Have the verifier check `chain` for each host; return the path it built, server certificate to root.

    Raises:
        CertificateError: (`tlsCertificate`) the verifier refuses it for a host, for the reason it gives.
    """
    # A self-signed certificate in the file is a root the operator vouches for (a private CA's, or the server
    # certificate itself); the verifier ends paths only at roots in its store. The trusted roots come first so
    # that a root both in the file and in the trust store counts as trusted. `_check_file_order` has found one
    # root or the other, so the store is never empty.
    own_roots = [cert for cert in chain if _issued_by(cert, cert)]
    builder = (
        PolicyBuilder()
        .store(Store([*trusted, *own_roots]))
        .time(moment)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
    )
    path: list[x509.Certificate] = []
    for host in hosts:
        address = _ip_address(host)
        subject = x509.DNSName(host) if address is None else x509.IPAddress(address)
        try:
            path = builder.build_server_verifier(subject).verify(chain[0], list(chain[1:]))
        except VerificationError as error:
            raise CertificateError(
                CERTIFICATE_KEY,
                f"fails the checks browsers make of a certificate chain (RFC 5280, CA/Browser Forum profile) for "
                f"{host}: {_verifier_reason(error)}",
            ) from None
    return path


@cache
def system_trust_store() -> tuple[x509.Certificate, ...]:
    """The roots OpenSSL trusts on this machine (`ssl.get_default_verify_paths()` cafile and capath).

    Read once, on first use. A missing or unreadable store, file or certificate is skipped: no trust store
    only means a chain must then end in a root of its own.
    """
    paths = ssl.get_default_verify_paths()
    sources: list[Path] = [Path(paths.cafile)] if paths.cafile else []
    if paths.capath:
        try:
            sources.extend(sorted(Path(paths.capath).iterdir()))
        except OSError:
            pass
    seen_files: set[Path] = set()
    roots: list[x509.Certificate] = []
    for source in sources:
        try:
            # capath is mostly hash-named links to the same files; read each file once.
            real = source.resolve()
            if real in seen_files or not real.is_file() or real.stat().st_size > _STORE_FILE_MAX:
                continue
            seen_files.add(real)
            text = real.read_bytes().decode("ascii", errors="ignore")
        except OSError:
            continue
        for kind, block in _pem_blocks(text)[0]:
            if kind != "CERTIFICATE":
                continue
            try:
                # Some long-standing roots break RFC 5280 (a negative serial); cryptography warns, the store keeps them.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                    cert = x509.load_pem_x509_certificate(block.encode())
            except ValueError:
                continue
            roots.append(cert)
    # A certificate equals another with the same DER; a root in both cafile and capath is kept once.
    return tuple(dict.fromkeys(roots))


def check_certificate_pair(
    cert_pem: str,
    key_pem: str,
    hostnames: Sequence[str],
    now: datetime | None = None,
    trust_store: Sequence[x509.Certificate] | None = None,
) -> CertificateSummary:
    """Check the operator's own certificate (`tlsCertificate`) and key (`tlsPrivateKey`) for `hostnames`.

    Args:
        cert_pem: PEM bundle: the server certificate first, then its intermediates, optionally the root.
        key_pem: the server certificate's unencrypted PEM private key (RSA >= 2048 bits, EC P-256/P-384).
        hostnames: the names clients browse to (`tlsHostnames`); each must be covered by a SAN.
        now: the moment validity is checked at (UTC; naive is taken as UTC), the current time when None.
        trust_store: roots a chain may end in without including them; None for :func:`system_trust_store`.

    Returns:
        What the server certificate says, and whether its chain ends in a root of the file's own.

    Raises:
        CertificateError: naming `tlsHostnames`, `tlsCertificate` or `tlsPrivateKey` and what is wrong.
    """
    if isinstance(hostnames, str):
        # A bare string is a Sequence[str] too; iterating it would check single letters.
        raise TypeError("hostnames must be a sequence of host names, not one string")
    hosts = [check_hostname(name) for name in hostnames]
    if not hosts:
        raise CertificateError(HOSTNAMES_KEY, "must list at least one host name the certificate is served for")
    chain = _read_certificates(
        cert_pem,
        CERTIFICATE_KEY,
        f"it belongs in {PRIVATE_KEY_KEY} (as a secret); give only certificates here: the server certificate "
        "first, then its intermediates",
    )
    private_key = _read_private_key(key_pem)
    _check_key_type(private_key)
    leaf = chain[0]
    _check_key_matches(private_key, leaf)
    _check_server_use(leaf)
    moment = _utc(now)
    _check_dates(0, leaf, moment)
    sans = _check_coverage(leaf, hosts)
    trusted = system_trust_store() if trust_store is None else tuple(trust_store)
    _check_file_order(chain, trusted, moment)
    path = _verify(chain, trusted, hosts, moment)
    return CertificateSummary(
        subject=leaf.subject.rfc4514_string(),
        sans=sans,
        not_after=leaf.not_valid_after_utc,
        self_signed_chain=path[-1] not in trusted,
        issuer=leaf.issuer.rfc4514_string(),
    )


def check_ca_bundle(pem: str, key: str) -> tuple[x509.Certificate, ...]:
    """Check a PEM value that must hold only CA certificates (e.g. `acmeCaCert`, a private ACME server's CA).

    Args:
        pem: one or more PEM certificates, each a CA (basicConstraints CA:TRUE, or an old self-signed root
            without extensions).
        key: the short config key, for messages.

    Returns:
        The certificates, in the file's order.

    Raises:
        CertificateError: (`key`) empty, not PEM, holds a private key or another block, a certificate does not
            parse or is not a CA's.
    """
    certificates = _read_certificates(pem, key, "give only the CA's certificate(s), never a key")
    for index, cert in enumerate(certificates):
        if not _is_ca(cert):
            raise CertificateError(
                key,
                f"certificate {index + 1} ({cert.subject.rfc4514_string() or 'no subject'}) is not a CA "
                "certificate; give the certificate of the CA that issues the server's certificate (its root), "
                "not a server certificate",
            )
    return certificates


def check_email(value: str, key: str = EMAIL_KEY) -> str:
    """Return the plausible e-mail address `value` (stripped): one @, a name before it, a dotted domain after.

    Raises:
        CertificateError: (`key`) `value` is empty, has spaces, not exactly one @, or no dotted domain.
    """
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        raise CertificateError(key, "must be an e-mail address (name@example.com); got an empty value")
    if len(text) > EMAIL_MAX or not text.isprintable() or any(char.isspace() for char in text):
        raise CertificateError(
            key, f"must be an e-mail address without spaces, at most {EMAIL_MAX} characters; got {_shown(text)}"
        )
    if text.count("@") != 1:
        raise CertificateError(key, f"must be an e-mail address with exactly one @; got {_shown(text)}")
    local, _, domain = text.partition("@")
    domain = domain.lower()
    if not local or "." not in domain or _dns_name_problem(domain) is not None:
        raise CertificateError(
            key, f"must be an e-mail address: a name, @, and a domain with a dot (name@example.com); got {_shown(text)}"
        )
    return text


def url_host(name: str) -> str:
    """A host name or address as it appears in a URL or a Caddy site address (IPv6 in brackets)."""
    return f"[{name}]" if ":" in name else name

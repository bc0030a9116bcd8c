"""TLS input checks (components.https.certs): hostnames, the operator's certificate and key, the ACME CA, e-mail.

Keys and certificates are made here with `cryptography`: one EC P-256 root and intermediate per module,
and server certificates issued from them per test (EC signing takes microseconds).
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import types
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from components.https import certs
from components.https.certs import (
    CertificateError,
    CertificateSummary,
    check_ca_bundle,
    check_certificate_pair,
    check_email,
    check_hostname,
    hostname_kind,
)
from testkit.pki import Certificates

#: The moment the tests check validity at; certificates are valid from a month before to two months after.
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
HOST = "argus.example.com"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _issue(
    subject: str,
    public_key: Any,
    issuer: x509.Certificate | None,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    *,
    ca: bool | None,
    sans: Sequence[x509.GeneralName] = (),
    eku: Sequence[x509.ObjectIdentifier] | None = None,
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=60),
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
    algorithm: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    """A certificate for `subject` signed by `issuer_key` (self-signed when `issuer` is None).

    `extensions` are added as (extension, critical) after the others; `algorithm` is the signature's hash
    (SHA-256 when None).
    """
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer is not None else _name(subject))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, algorithm or hashes.SHA256())


@dataclasses.dataclass(frozen=True)
class Pki:
    """A root CA, an intermediate it issued, and a server key; `leaf` issues server certificates."""

    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey
    key: ec.EllipticCurvePrivateKey

    def leaf(
        self,
        *names: str,
        key: PrivateKeyTypes | None = None,
        ca: bool | None = False,
        eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.SERVER_AUTH,),
        subject: str = HOST,
        **dates: datetime,
    ) -> x509.Certificate:
        """A server certificate the intermediate issued, with `names` (DNS, or IP when they parse) as SANs."""
        sans: list[x509.GeneralName] = []
        for name in names or (HOST,):
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        public_key = (key or self.key).public_key()
        return _issue(subject, public_key, self.intermediate, self.intermediate_key, ca=ca, sans=sans, eku=eku, **dates)


@pytest.fixture(scope="module")
def pki() -> Pki:
    root_key, intermediate_key = _key(), _key()
    root = _issue("ArgusAI Test Root", root_key.public_key(), None, root_key, ca=True)
    intermediate = _issue("ArgusAI Test Intermediate", intermediate_key.public_key(), root, root_key, ca=True)
    return Pki(root, root_key, intermediate, intermediate_key, _key())


@pytest.fixture(scope="module")
def rsa_2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(*chain: x509.Certificate) -> str:
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in chain)


def key_pem(
    key: PrivateKeyTypes,
    fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8,
    password: bytes | None = None,
) -> str:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption).decode()


def refused(key: str, call: Callable[[], object], *, secrets: Sequence[str] = (), match: str) -> str:
    """Assert `call` raises CertificateError for `key` with `match` in it, quoting no line of `secrets`."""
    with pytest.raises(CertificateError) as info:
        call()
    error = info.value
    message = str(error)
    assert error.key == key
    assert f"'{key}'" in message
    assert match in error.message, message
    for secret in secrets:
        lines = [line.strip() for line in secret.splitlines() if line.strip()]
        assert lines, "a secret to look for must have lines"
        leaked = [line for line in lines if line in message]
        assert not leaked, f"the message quotes the private key: {leaked}"
    return message


def pair_refused(
    key: str, cert_pem: str, private_pem: str, *, match: str, hostnames: Sequence[str] = (HOST,), **kwargs: Any
) -> str:
    """check_certificate_pair refuses with `key`, and the message quotes neither the key nor the certificates."""
    kwargs.setdefault("now", NOW)
    message = refused(
        key,
        lambda: check_certificate_pair(cert_pem, private_pem, hostnames, **kwargs),
        secrets=[private_pem] if private_pem.strip() else [],
        match=match,
    )
    bodies = [line for line in cert_pem.splitlines() if line and not line.startswith("-----")]
    assert not [line for line in bodies if line in message], "the message quotes the certificate PEM"
    return message


# --- CertificateError ---------------------------------------------------------------------------------------


def test_error_carries_the_short_key_and_message() -> None:
    error = CertificateError("tlsCertificate", "is empty")
    assert (error.key, error.message, str(error)) == ("tlsCertificate", "is empty", "'tlsCertificate' is empty")


# --- hostnames ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("argus.example.com", "public"),
        ("Argus.Example.COM", "public"),
        ("cams.example.org", "public"),
        ("localhost", "private"),
        ("app.localhost", "private"),
        ("argus", "private"),
        ("argus.lan", "private"),
        ("argus.internal", "private"),
        ("nas.local", "private"),
        ("argus.home.arpa", "private"),
        ("argus.test", "private"),
        ("argus.example", "private"),
        ("argus.invalid", "private"),
        ("argus.corp", "private"),
        ("argus.home", "private"),
        ("lan.example.com", "public"),
        ("argus.local.example.com", "public"),
        ("192.0.2.10", "ip"),
        ("2001:db8::1", "ip"),
        ("[2001:db8::1]", "ip"),
    ],
)
def test_hostname_kind(name: str, kind: str) -> None:
    assert hostname_kind(name) == kind


@pytest.mark.parametrize(
    ("name", "normalised"),
    [
        (" Argus.Example.COM ", "argus.example.com"),
        ("[2001:DB8:0:0::1]", "2001:db8::1"),
        ("2001:0db8::0001", "2001:db8::1"),
        ("192.0.2.10", "192.0.2.10"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a" * 63 + ".example.com", "a" * 63 + ".example.com"),
        (".".join(["a" * 63] * 3 + ["b" * 61]), ".".join(["a" * 63] * 3 + ["b" * 61])),
    ],
)
def test_check_hostname_normalises(name: str, normalised: str) -> None:
    assert check_hostname(name) == normalised


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("*.example.com", "not a wildcard"),
        ("-argus.example.com", "not a DNS name"),
        ("argus-.example.com", "not a DNS name"),
        ("argus..example.com", "not a DNS name"),
        ("argus.example.com.", "not a DNS name"),
        ("argus_1.lan", "not a DNS name"),
        ("a*b.example.com", "not a DNS name"),
        ("a" * 64 + ".example.com", "not a DNS name"),
        (".".join(["a" * 63] * 3 + ["b" * 62]), "at most 253"),
        ("bücher.example", "ASCII"),
        ("192.168.1.300", "neither an IP address nor a DNS name"),
        ("fe80::1%eth0", "IPv6 zone"),
        ("[192.0.2.10]", "not a DNS name"),
        ("https://argus.example.com", "not a DNS name"),
    ],
)
def test_check_hostname_refuses(name: str, match: str) -> None:
    refused("tlsHostnames", lambda: check_hostname(name), match=match)
    refused("tlsHostnames", lambda: hostname_kind(name), match=match)


# --- e-mail -----------------------------------------------------------------------------------------------


def test_check_email_accepts_and_strips() -> None:
    assert check_email(" ops+tls@mail.example.com ") == "ops+tls@mail.example.com"


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("", "empty"),
        ("ops", "exactly one @"),
        ("ops@team@example.com", "exactly one @"),
        ("ops @example.com", "without spaces"),
        ("ops@exa\tmple.com", "without spaces"),
        ("@example.com", "a name, @, and a domain with a dot"),
        ("ops@localhost", "a domain with a dot"),
        ("ops@.example.com", "a domain with a dot"),
        ("ops@example..com", "a domain with a dot"),
        ("ops@example.com.", "a domain with a dot"),
        ("o" * 250 + "@example.com", "at most 254"),
    ],
)
def test_check_email_refuses(value: str, match: str) -> None:
    refused("acmeEmail", lambda: check_email(value), match=match)


def test_check_email_names_the_key_given() -> None:
    refused("alertEmail", lambda: check_email("nobody", key="alertEmail"), match="exactly one @")


# --- certificate and key: accepted -------------------------------------------------------------------------


def test_full_chain_in_the_file(pki: Pki) -> None:
    leaf = pki.leaf(HOST, "192.0.2.10")
    summary = check_certificate_pair(
        pem(leaf, pki.intermediate, pki.root), key_pem(pki.key), [HOST], now=NOW, trust_store=()
    )
    assert summary == CertificateSummary(
        subject=f"CN={HOST}",
        sans=(HOST, "192.0.2.10"),
        not_after=leaf.not_valid_after_utc,
        self_signed_chain=True,
        issuer="CN=ArgusAI Test Intermediate",
    )
    assert summary.not_after.tzinfo is not None


def test_summary_is_frozen(pki: Pki) -> None:
    summary = check_certificate_pair(
        pem(pki.leaf(), pki.intermediate, pki.root), key_pem(pki.key), [HOST], now=NOW, trust_store=()
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.subject = "CN=other"  # type: ignore[misc]


def test_root_only_in_the_trust_store(pki: Pki) -> None:
    summary = check_certificate_pair(
        pem(pki.leaf(), pki.intermediate), key_pem(pki.key), [HOST], now=NOW, trust_store=[pki.root]
    )
    assert summary.self_signed_chain is False


def test_root_in_the_file_that_the_store_also_trusts(pki: Pki) -> None:
    summary = check_certificate_pair(
        pem(pki.leaf(), pki.intermediate, pki.root), key_pem(pki.key), [HOST], now=NOW, trust_store=[pki.root]
    )
    assert summary.self_signed_chain is False


def test_certificates_after_a_trusted_issuer_are_not_walked(pki: Pki) -> None:
    # Like a CA appending a cross-signed root whose own issuer the store no longer has.
    other = _key()
    cross = _issue(
        "ArgusAI Test Root",
        pki.root_key.public_key(),
        _issue("Old Root", other.public_key(), None, other, ca=True),
        other,
        ca=True,
    )
    summary = check_certificate_pair(
        pem(pki.leaf(), pki.intermediate, cross), key_pem(pki.key), [HOST], now=NOW, trust_store=[pki.root]
    )
    assert summary.self_signed_chain is False


def test_self_signed_server_certificate(pki: Pki) -> None:
    own = _issue("argus.lan", pki.key.public_key(), None, pki.key, ca=False, sans=[x509.DNSName("argus.lan")])
    summary = check_certificate_pair(pem(own), key_pem(pki.key), ["argus.lan"], now=NOW, trust_store=())
    assert (summary.self_signed_chain, summary.issuer, summary.sans) == (True, "CN=argus.lan", ("argus.lan",))


@pytest.mark.parametrize("hosts", [["a.example.com"], ["A.Example.com", "b.example.com"], ["x-1.example.com"]])
def test_wildcard_covers_one_label(pki: Pki, hosts: list[str]) -> None:
    leaf = pki.leaf("*.example.com")
    summary = check_certificate_pair(
        pem(leaf, pki.intermediate, pki.root), key_pem(pki.key), hosts, now=NOW, trust_store=()
    )
    assert summary.sans == ("*.example.com",)


def test_ip_sans(pki: Pki) -> None:
    leaf = pki.leaf("192.0.2.10", "2001:db8::1", "argus.lan")
    summary = check_certificate_pair(
        pem(leaf, pki.intermediate, pki.root),
        key_pem(pki.key),
        ["192.0.2.10", "[2001:DB8::1]", "argus.lan"],
        now=NOW,
        trust_store=(),
    )
    assert summary.sans == ("argus.lan", "192.0.2.10", "2001:db8::1")


@pytest.mark.parametrize(
    ("make_key", "fmt"),
    [
        ("rsa_2048", serialization.PrivateFormat.PKCS8),
        ("rsa_2048", serialization.PrivateFormat.TraditionalOpenSSL),
        ("p384", serialization.PrivateFormat.PKCS8),
        ("p256", serialization.PrivateFormat.TraditionalOpenSSL),
    ],
)
def test_accepted_key_types_and_formats(
    pki: Pki, rsa_2048: rsa.RSAPrivateKey, make_key: str, fmt: serialization.PrivateFormat
) -> None:
    key = {"rsa_2048": rsa_2048, "p384": ec.generate_private_key(ec.SECP384R1()), "p256": pki.key}[make_key]
    leaf = pki.leaf(key=key)
    summary = check_certificate_pair(
        pem(leaf, pki.intermediate, pki.root), key_pem(key, fmt), [HOST], now=NOW, trust_store=()
    )
    assert summary.subject == f"CN={HOST}"


def test_ec_parameters_before_the_key_and_crlf(pki: Pki) -> None:
    # `openssl ecparam -genkey -name prime256v1` writes the curve's OID block first; Windows editors add CRs.
    oid = base64.b64encode(bytes.fromhex("06082a8648ce3d030107")).decode()
    key_text = f"-----BEGIN EC PARAMETERS-----\n{oid}\n-----END EC PARAMETERS-----\n" + key_pem(
        pki.key, serialization.PrivateFormat.TraditionalOpenSSL
    )
    cert_text = pem(pki.leaf(), pki.intermediate, pki.root).replace("\n", "\r\n")
    summary = check_certificate_pair(cert_text, key_text.replace("\n", "\r\n"), [HOST], now=NOW, trust_store=())
    assert summary.issuer == "CN=ArgusAI Test Intermediate"


def test_eku_with_server_auth_among_others(pki: Pki) -> None:
    leaf = pki.leaf(eku=[ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH])
    assert check_certificate_pair(
        pem(leaf, pki.intermediate, pki.root), key_pem(pki.key), [HOST], now=NOW, trust_store=()
    )


def test_no_eku_means_any_use(pki: Pki) -> None:
    leaf = pki.leaf(eku=None)
    assert check_certificate_pair(
        pem(leaf, pki.intermediate, pki.root), key_pem(pki.key), [HOST], now=NOW, trust_store=()
    )


def test_naive_now_is_utc(pki: Pki) -> None:
    leaf = pki.leaf(not_after=NOW)
    naive = NOW.replace(tzinfo=None)
    assert check_certificate_pair(
        pem(leaf, pki.intermediate, pki.root), key_pem(pki.key), [HOST], now=naive, trust_store=()
    )
    pair_refused(
        "tlsCertificate",
        pem(leaf, pki.intermediate, pki.root),
        key_pem(pki.key),
        match="expired",
        now=naive + timedelta(seconds=1),
        trust_store=(),
    )


def test_aware_now_is_converted_to_utc(pki: Pki) -> None:
    leaf = pki.leaf(not_after=NOW - timedelta(minutes=1))
    message = pair_refused(
        "tlsCertificate",
        pem(leaf, pki.intermediate, pki.root),
        key_pem(pki.key),
        match="expired on 2030-06-01 11:59:00 UTC",
        now=NOW.astimezone(timezone(timedelta(hours=2))),
        trust_store=(),
    )
    assert "(now 2030-06-01 12:00:00 UTC)" in message


def test_now_defaults_to_the_current_time(pki: Pki) -> None:
    current = datetime.now(UTC)
    around = {"not_before": current - timedelta(days=1), "not_after": current + timedelta(days=1)}
    root = _issue("Current Root", pki.root_key.public_key(), None, pki.root_key, ca=True, **around)
    valid = _issue(HOST, pki.key.public_key(), root, pki.root_key, ca=False, sans=[x509.DNSName(HOST)], **around)
    later = _issue(
        HOST,
        pki.key.public_key(),
        root,
        pki.root_key,
        ca=False,
        sans=[x509.DNSName(HOST)],
        not_before=current + timedelta(hours=1),
        not_after=current + timedelta(days=2),
    )
    assert check_certificate_pair(pem(valid, root), key_pem(pki.key), [HOST], trust_store=())
    with pytest.raises(CertificateError, match="the server certificate .* is not valid yet"):
        check_certificate_pair(pem(later, root), key_pem(pki.key), [HOST], trust_store=())


# --- certificate and key: refused ---------------------------------------------------------------------------


def test_expired(pki: Pki) -> None:
    leaf = pki.leaf(not_after=NOW - timedelta(days=1))
    message = pair_refused(
        "tlsCertificate", pem(leaf, pki.intermediate, pki.root), key_pem(pki.key), match="expired on", trust_store=()
    )
    assert "the server certificate (CN=argus.example.com) expired on 2030-05-31 12:00:00 UTC" in message
    assert "now 2030-06-01 12:00:00 UTC" in message


def test_not_yet_valid(pki: Pki) -> None:
    leaf = pki.leaf(not_before=NOW + timedelta(hours=2))
    message = pair_refused(
        "tlsCertificate", pem(leaf, pki.intermediate, pki.root), key_pem(pki.key), match="not valid yet", trust_store=()
    )
    assert "valid from 2030-06-01 14:00:00 UTC" in message


def test_expired_intermediate(pki: Pki) -> None:
    old = _issue(
        "ArgusAI Old Intermediate",
        pki.intermediate_key.public_key(),
        pki.root,
        pki.root_key,
        ca=True,
        not_after=NOW - timedelta(days=2),
    )
    leaf = _issue(HOST, pki.key.public_key(), old, pki.intermediate_key, ca=False, sans=[x509.DNSName(HOST)])
    message = pair_refused(
        "tlsCertificate", pem(leaf, old, pki.root), key_pem(pki.key), match="expired on", trust_store=()
    )
    assert "certificate 2 (CN=ArgusAI Old Intermediate) expired on 2030-05-30" in message


def test_key_does_not_match(pki: Pki) -> None:
    other = key_pem(_key())
    message = pair_refused(
        "tlsPrivateKey", pem(pki.leaf(), pki.intermediate, pki.root), other, match="does not match", trust_store=()
    )
    assert "CN=argus.example.com" in message


@pytest.mark.parametrize(
    "fmt",
    [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL],
    ids=["pkcs8", "traditional"],
)
def test_encrypted_key(pki: Pki, fmt: serialization.PrivateFormat) -> None:
    encrypted = key_pem(pki.key, fmt, password=b"correct horse")
    message = pair_refused(
        "tlsPrivateKey", pem(pki.leaf(), pki.intermediate, pki.root), encrypted, match="encrypted", trust_store=()
    )
    assert "Caddy cannot read an encrypted key" in message
    assert "openssl pkey" in message


@pytest.mark.parametrize("with_certificate", [False, True], ids=["key-alone", "key-and-certificate"])
def test_private_key_in_the_certificate_field(pki: Pki, with_certificate: bool) -> None:
    private = key_pem(pki.key)
    cert_text = pem(pki.leaf()) + private if with_certificate else private
    message = refused(
        "tlsCertificate",
        lambda: check_certificate_pair(cert_text, private, [HOST], now=NOW, trust_store=()),
        secrets=[private],
        match="holds a private key",
    )
    assert "tlsPrivateKey" in message


def test_truncated_private_key_in_the_certificate_field(pki: Pki) -> None:
    private = key_pem(pki.key, serialization.PrivateFormat.TraditionalOpenSSL)
    cut = "\n".join(private.splitlines()[:-1])
    refused(
        "tlsCertificate",
        lambda: check_certificate_pair(cut, private, [HOST], now=NOW, trust_store=()),
        secrets=[private],
        match="holds a private key",
    )


@pytest.mark.parametrize("with_key", [False, True], ids=["certificate-alone", "certificate-and-key"])
def test_certificate_in_the_key_field(pki: Pki, with_key: bool) -> None:
    cert_text = pem(pki.leaf(), pki.intermediate, pki.root)
    key_text = key_pem(pki.key) + cert_text if with_key else cert_text
    message = pair_refused("tlsPrivateKey", cert_text, key_text, match="holds a certificate", trust_store=())
    assert "tlsCertificate" in message


@pytest.mark.parametrize(
    ("key_text", "match"),
    [
        ("", "is empty"),
        ("  \n", "is empty"),
        ("MHcCAQEEI...", "must be a PEM private key"),
        ("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n", "PUBLIC KEY block(s)"),
        ("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n", "CERTIFICATE REQUEST"),
    ],
)
def test_key_field_not_a_private_key(pki: Pki, key_text: str, match: str) -> None:
    pair_refused("tlsPrivateKey", pem(pki.leaf(), pki.intermediate, pki.root), key_text, match=match, trust_store=())


def test_truncated_key(pki: Pki) -> None:
    private = key_pem(pki.key)
    cut = "\n".join(private.splitlines()[:-1])
    message = refused(
        "tlsPrivateKey",
        lambda: check_certificate_pair(pem(pki.leaf()), cut, [HOST], now=NOW, trust_store=()),
        secrets=[private],
        match="without its matching END line",
    )
    assert "cut short" in message


def test_corrupted_key(pki: Pki) -> None:
    lines = key_pem(pki.key).splitlines()
    lines[2] = lines[2][::-1]
    corrupted = "\n".join(lines) + "\n"
    pair_refused(
        "tlsPrivateKey", pem(pki.leaf(), pki.intermediate, pki.root), corrupted, match="does not parse", trust_store=()
    )


def test_text_around_the_key(pki: Pki) -> None:
    key_text = "my key:\n" + key_pem(pki.key)
    pair_refused(
        "tlsPrivateKey", pem(pki.leaf(), pki.intermediate, pki.root), key_text, match="text outside", trust_store=()
    )


def test_two_keys(pki: Pki) -> None:
    key_text = key_pem(pki.key) + key_pem(_key())
    pair_refused(
        "tlsPrivateKey",
        pem(pki.leaf(), pki.intermediate, pki.root),
        key_text,
        match="holds 2 private keys",
        trust_store=(),
    )


def test_only_ec_parameters(pki: Pki) -> None:
    oid = base64.b64encode(bytes.fromhex("06082a8648ce3d030107")).decode()
    key_text = f"-----BEGIN EC PARAMETERS-----\n{oid}\n-----END EC PARAMETERS-----\n"
    pair_refused(
        "tlsPrivateKey",
        pem(pki.leaf(), pki.intermediate, pki.root),
        key_text,
        match="holds no private key",
        trust_store=(),
    )


def test_openssh_key(pki: Pki) -> None:
    openssh = key_pem(pki.key, serialization.PrivateFormat.OpenSSH)
    pair_refused("tlsPrivateKey", pem(pki.leaf(), pki.intermediate, pki.root), openssh, match="OpenSSH", trust_store=())


def test_ed25519_key(pki: Pki) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    leaf = pki.leaf(key=key)
    message = pair_refused(
        "tlsPrivateKey", pem(leaf, pki.intermediate, pki.root), key_pem(key), match="Ed25519", trust_store=()
    )
    assert "browsers do not accept" in message


def test_rsa_1024_key(pki: Pki) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    leaf = pki.leaf(key=key)
    message = pair_refused(
        "tlsPrivateKey", pem(leaf, pki.intermediate, pki.root), key_pem(key), match="1024-bit RSA", trust_store=()
    )
    assert "at least 2048 bits" in message


def test_p521_key(pki: Pki) -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    leaf = pki.leaf(key=key)
    pair_refused(
        "tlsPrivateKey", pem(leaf, pki.intermediate, pki.root), key_pem(key), match="secp521r1", trust_store=()
    )


@pytest.mark.parametrize(
    ("cert_text", "match"),
    [
        ("", "is empty"),
        ("MIIBszCCAVmgAwIBAgIU", "must be PEM"),
        (
            "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
            "CERTIFICATE REQUEST block(s)",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n",
            "certificate 1 does not parse",
        ),
        ("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n", "without its matching END line"),
    ],
)
def test_certificate_field_not_certificates(pki: Pki, cert_text: str, match: str) -> None:
    pair_refused("tlsCertificate", cert_text, key_pem(pki.key), match=match, trust_store=())


def test_text_around_the_certificates(pki: Pki) -> None:
    cert_text = f"subject=CN={HOST}\n" + pem(pki.leaf(), pki.intermediate, pki.root)
    pair_refused("tlsCertificate", cert_text, key_pem(pki.key), match="text outside", trust_store=())


def test_second_certificate_does_not_parse(pki: Pki) -> None:
    broken = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n"
    pair_refused(
        "tlsCertificate",
        pem(pki.leaf()) + broken,
        key_pem(pki.key),
        match="certificate 2 does not parse",
        trust_store=(),
    )


def test_missing_intermediate(pki: Pki) -> None:
    message = pair_refused(
        "tlsCertificate", pem(pki.leaf()), key_pem(pki.key), match="incomplete chain", trust_store=[pki.root]
    )
    assert "issued by 'CN=ArgusAI Test Intermediate'" in message
    assert "add the intermediate certificate(s) after the server certificate" in message


def test_missing_root_without_a_trust_store(pki: Pki) -> None:
    message = pair_refused(
        "tlsCertificate", pem(pki.leaf(), pki.intermediate), key_pem(pki.key), match="incomplete chain", trust_store=()
    )
    assert "certificate 2 (CN=ArgusAI Test Intermediate) was issued by 'CN=ArgusAI Test Root'" in message


def test_chain_out_of_order(pki: Pki) -> None:
    message = pair_refused(
        "tlsCertificate",
        pem(pki.leaf(), pki.root, pki.intermediate),
        key_pem(pki.key),
        match="not a chain in order",
        trust_store=(),
    )
    assert "is not its issuer 'CN=ArgusAI Test Intermediate'" in message


def test_intermediate_with_the_name_but_not_the_key(pki: Pki) -> None:
    impostor_key = _key()
    impostor = _issue("ArgusAI Test Intermediate", impostor_key.public_key(), pki.root, pki.root_key, ca=True)
    message = pair_refused(
        "tlsCertificate", pem(pki.leaf(), impostor, pki.root), key_pem(pki.key), match="different key", trust_store=()
    )
    assert "certificate 2 (CN=ArgusAI Test Intermediate)" in message


def test_root_not_trusted_by_the_given_store(pki: Pki) -> None:
    # A store of other roots: the chain must then end in a root of its own.
    other = _key()
    stranger = _issue("Some Public Root", other.public_key(), None, other, ca=True)
    pair_refused(
        "tlsCertificate",
        pem(pki.leaf(), pki.intermediate),
        key_pem(pki.key),
        match="incomplete chain",
        trust_store=[stranger],
    )


def test_root_with_its_own_name_but_another_signer(pki: Pki) -> None:
    # Issuer == subject is not enough to be a root: the signature must verify with its own key.
    forger = _key()
    fake_root = _issue("ArgusAI Test Root", pki.root_key.public_key(), None, forger, ca=True)
    message = pair_refused(
        "tlsCertificate",
        pem(pki.leaf(), pki.intermediate, fake_root),
        key_pem(pki.key),
        match="incomplete chain",
        trust_store=(),
    )
    assert "certificate 3 (CN=ArgusAI Test Root) was issued by 'CN=ArgusAI Test Root'" in message


def test_ca_certificate_as_the_server_certificate(pki: Pki) -> None:
    ca_leaf = pki.leaf(ca=True)
    message = pair_refused(
        "tlsCertificate",
        pem(ca_leaf, pki.intermediate, pki.root),
        key_pem(pki.key),
        match="CA certificate",
        trust_store=(),
    )
    assert "put the server certificate first" in message


def test_intermediate_first(pki: Pki) -> None:
    pair_refused(
        "tlsCertificate",
        pem(pki.intermediate, pki.leaf(), pki.root),
        key_pem(pki.intermediate_key),
        match="starts with a CA certificate (CN=ArgusAI Test Intermediate",
        trust_store=(),
    )


def test_eku_without_server_auth(pki: Pki) -> None:
    leaf = pki.leaf(eku=[ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.CODE_SIGNING])
    message = pair_refused(
        "tlsCertificate",
        pem(leaf, pki.intermediate, pki.root),
        key_pem(pki.key),
        match="not serverAuth",
        trust_store=(),
    )
    assert "allows clientAuth, codeSigning" in message


@pytest.mark.parametrize("host", ["example.com", "a.b.example.com", "a.example.org"])
def test_wildcard_covers_only_one_label(pki: Pki, host: str) -> None:
    leaf = pki.leaf("*.example.com")
    message = pair_refused(
        "tlsCertificate",
        pem(leaf, pki.intermediate, pki.root),
        key_pem(pki.key),
        match=f"does not cover {host} ",
        hostnames=[host],
        trust_store=(),
    )
    assert "names DNS:*.example.com" in message


def test_wildcard_under_a_tld_covers_nothing(pki: Pki) -> None:
    leaf = pki.leaf("*.lan")
    pair_refused(
        "tlsCertificate",
        pem(leaf, pki.intermediate, pki.root),
        key_pem(pki.key),
        match="does not cover argus.lan",
        hostnames=["argus.lan"],
        trust_store=(),
    )


def test_names_every_uncovered_host(pki: Pki) -> None:
    leaf = pki.leaf(HOST, "192.0.2.10")
    message = pair_refused(
        "tlsCertificate",
        pem(leaf, pki.intermediate, pki.root),
        key_pem(pki.key),
        match="does not cover cams.example.com, 192.0.2.11 (from tlsHostnames)",
        hostnames=[HOST, "cams.example.com", "192.0.2.10", "192.0.2.11"],
        trust_store=(),
    )
    assert "names DNS:argus.example.com, IP:192.0.2.10" in message


def test_ip_host_needs_an_ip_san(pki: Pki) -> None:
    leaf = pki.leaf("argus.lan")
    dns_spelling = _issue(
        HOST, pki.key.public_key(), pki.intermediate, pki.intermediate_key, ca=False, sans=[x509.DNSName("192.0.2.10")]
    )
    for cert in (leaf, dns_spelling):
        pair_refused(
            "tlsCertificate",
            pem(cert, pki.intermediate, pki.root),
            key_pem(pki.key),
            match="does not cover 192.0.2.10",
            hostnames=["192.0.2.10"],
            trust_store=(),
        )


def test_common_name_ignored_when_sans_exist(pki: Pki) -> None:
    leaf = pki.leaf("other.example.com", subject=HOST)
    pair_refused(
        "tlsCertificate",
        pem(leaf, pki.intermediate, pki.root),
        key_pem(pki.key),
        match=f"does not cover {HOST}",
        trust_store=(),
    )


def test_no_subject_alternative_name(pki: Pki) -> None:
    leaf = _issue(HOST, pki.key.public_key(), pki.intermediate, pki.intermediate_key, ca=False)
    message = pair_refused(
        "tlsCertificate",
        pem(leaf, pki.intermediate, pki.root),
        key_pem(pki.key),
        match="has no subjectAltName",
        trust_store=(),
    )
    assert "ignore the Common Name" in message


@pytest.mark.parametrize(
    ("hostnames", "match"), [([], "at least one"), (["*.example.com"], "not a wildcard"), (["a..b"], "not a DNS name")]
)
def test_bad_hostnames(pki: Pki, hostnames: list[str], match: str) -> None:
    pair_refused(
        "tlsHostnames",
        pem(pki.leaf(), pki.intermediate, pki.root),
        key_pem(pki.key),
        match=match,
        hostnames=hostnames,
        trust_store=(),
    )


def test_hostnames_must_not_be_one_string(pki: Pki) -> None:
    with pytest.raises(TypeError, match="not one string"):
        check_certificate_pair(pem(pki.leaf()), key_pem(pki.key), HOST, now=NOW, trust_store=())


# --- the chain as browsers check it (cryptography's verifier) ---------------------------------------------
# What the verifier refuses beyond the checks above (RFC 5280 and the CA/Browser Forum profile), and what it is
# set to accept because browsers do.


def _key_usage(*, key_cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _server(pki: Pki, issuer: x509.Certificate, issuer_key: Any, **kwargs: Any) -> x509.Certificate:
    """A server certificate for HOST with the module's server key, issued by `issuer`."""
    kwargs.setdefault("sans", [x509.DNSName(HOST)])
    return _issue(HOST, pki.key.public_key(), issuer, issuer_key, ca=False, **kwargs)


def chain_refused(pki: Pki, *chain: x509.Certificate, match: str, **kwargs: Any) -> str:
    """check_certificate_pair refuses the chain (the module key) for `tlsCertificate`."""
    kwargs.setdefault("trust_store", ())
    return pair_refused("tlsCertificate", pem(*chain), key_pem(pki.key), match=match, **kwargs)


@pytest.mark.parametrize("ca", [False, None], ids=["ca-false", "no-basic-constraints"])
def test_issuer_that_is_not_a_ca(pki: Pki, ca: bool | None) -> None:
    # A certificate that is not a CA's signing a server certificate: the chain's signatures all verify.
    key = _key()
    not_ca = _issue("Not A CA", key.public_key(), pki.intermediate, pki.intermediate_key, ca=ca)
    message = chain_refused(
        pki, _server(pki, not_ca, key), not_ca, pki.intermediate, pki.root, match="fails the checks browsers make"
    )
    assert f"for {HOST}: " in message
    assert "basicConstraints" in message


def test_path_length_constraint(pki: Pki) -> None:
    # A root that allows no CA below it, above an intermediate.
    key, intermediate_key = _key(), _key()
    root = _issue(
        "No Sub-CA Root",
        key.public_key(),
        None,
        key,
        ca=None,
        extensions=[(x509.BasicConstraints(ca=True, path_length=0), True)],
    )
    intermediate = _issue("Sub-CA", intermediate_key.public_key(), root, key, ca=True)
    chain_refused(
        pki, _server(pki, intermediate, intermediate_key), intermediate, root, match="path length constraint violated"
    )


def test_ca_key_usage_without_certificate_signing(pki: Pki) -> None:
    key = _key()
    intermediate = _issue(
        "CRL-only Intermediate",
        key.public_key(),
        pki.root,
        pki.root_key,
        ca=True,
        extensions=[(_key_usage(key_cert_sign=False), True)],
    )
    chain_refused(pki, _server(pki, intermediate, key), intermediate, pki.root, match="keyUsage.keyCertSign")


def test_signature_algorithm_browsers_refuse(pki: Pki) -> None:
    leaf = _server(pki, pki.intermediate, pki.intermediate_key, algorithm=hashes.SHA224())
    message = chain_refused(pki, leaf, pki.intermediate, pki.root, match="signed with an algorithm browsers refuse")
    assert "AlgorithmIdentifier" not in message


def test_ca_with_a_weak_rsa_key(pki: Pki) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    intermediate = _issue("Weak Intermediate", weak.public_key(), pki.root, pki.root_key, ca=True)
    chain_refused(
        pki,
        _server(pki, intermediate, weak),
        intermediate,
        pki.root,
        match="a CA's RSA key is shorter than 2048 bits",
    )


def test_name_constraints(pki: Pki) -> None:
    key = _key()
    only_org = x509.NameConstraints(permitted_subtrees=[x509.DNSName("example.org")], excluded_subtrees=None)
    intermediate = _issue(
        "Constrained Intermediate", key.public_key(), pki.root, pki.root_key, ca=True, extensions=[(only_org, True)]
    )
    chain_refused(pki, _server(pki, intermediate, key), intermediate, pki.root, match="name constraints")


def test_expired_trusted_root(pki: Pki) -> None:
    expired = _issue(
        "ArgusAI Test Root", pki.root_key.public_key(), None, pki.root_key, ca=True, not_after=NOW - timedelta(days=1)
    )
    chain_refused(
        pki,
        pki.leaf(),
        pki.intermediate,
        match="such as the trusted root it ends in, is expired or not yet valid",
        trust_store=[expired],
    )


def _der(tag: int, content: bytes) -> bytes:
    """One DER tag-length-value."""
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = (len(content).bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + len(content).to_bytes(size, "big") + content


def _version_1(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    """`cert` (made without extensions) as the X.509 v1 certificate `openssl x509 -req -signkey` makes, re-signed.

    cryptography only builds v3: the TBS loses its version field ([0] EXPLICIT INTEGER 2) and is signed again.
    """
    tbs = cert.tbs_certificate_bytes
    body = tbs[2 + (tbs[1] & 0x7F if tbs[1] & 0x80 else 0) :]
    v3 = bytes.fromhex("a003020102")
    assert body.startswith(v3)
    tbs_v1 = _der(0x30, body[len(v3) :])
    ecdsa_sha256 = bytes.fromhex("300a06082a8648ce3d040302")
    signature = key.sign(tbs_v1, ec.ECDSA(hashes.SHA256()))
    return x509.load_der_x509_certificate(_der(0x30, tbs_v1 + ecdsa_sha256 + _der(0x03, b"\x00" + signature)))


def test_version_1_root(pki: Pki) -> None:
    # The profile wants v3 throughout; a v1 certificate cannot carry basicConstraints to say it is a CA.
    key = _key()
    root = _version_1(_issue("Old Style Root", key.public_key(), None, key, ca=None), key)
    assert root.version == x509.Version.v1
    chain_refused(pki, _server(pki, root, key), root, match="is X.509 v1")


def test_unknown_critical_extension(pki: Pki) -> None:
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    leaf = _server(pki, pki.intermediate, pki.intermediate_key, extensions=[(unknown, True)])
    message = chain_refused(pki, leaf, pki.intermediate, pki.root, match="unaccounted-for critical extensions")
    assert "1.3.6.1.4.1.55555.1" in message


def test_critical_subject_alternative_name_with_a_subject(pki: Pki) -> None:
    # RFC 5280 and the CA/Browser Forum: critical only when the subject is empty.
    critical = (x509.SubjectAlternativeName([x509.DNSName(HOST)]), True)
    leaf = _server(pki, pki.intermediate, pki.intermediate_key, sans=(), extensions=[critical])
    chain_refused(pki, leaf, pki.intermediate, pki.root, match="subjectAltName MUST NOT be critical")


def test_dns_name_with_a_trailing_dot_covers_nothing(pki: Pki) -> None:
    # Not a name a CA may issue; Firefox and the verifier match nothing with it.
    leaf = pki.leaf(f"{HOST}.")
    chain_refused(pki, leaf, pki.intermediate, pki.root, match=f"does not cover {HOST} ")


@pytest.mark.parametrize("variant", ["no-key-usage", "basic-constraints-not-critical"])
def test_ca_profiles_browsers_accept(pki: Pki, variant: str) -> None:
    # The verifier's defaults refuse each; browsers accept them, and roots in the system store have them.
    key, intermediate_key = _key(), _key()
    usage = [] if variant == "no-key-usage" else [(_key_usage(key_cert_sign=True), True)]
    critical = variant != "basic-constraints-not-critical"
    root = _issue(
        "Older Root",
        key.public_key(),
        None,
        key,
        ca=None,
        extensions=[(x509.BasicConstraints(ca=True, path_length=None), critical), *usage],
    )
    intermediate = _issue("Older Intermediate", intermediate_key.public_key(), root, key, ca=True, extensions=usage)
    leaf = _server(pki, intermediate, intermediate_key)
    summary = check_certificate_pair(
        pem(leaf, intermediate, root), key_pem(pki.key), [HOST], now=NOW, trust_store=[root]
    )
    assert summary.self_signed_chain is False


def test_the_test_kits_certificates() -> None:
    made = Certificates.for_names("argus.lan", "192.0.2.10")
    summary = check_certificate_pair(
        made.server_cert.decode() + made.ca, made.server_key.decode(), ["argus.lan", "192.0.2.10"], trust_store=()
    )
    assert (summary.sans, summary.self_signed_chain) == (("argus.lan", "192.0.2.10"), True)


# --- the system trust store --------------------------------------------------------------------------------


@pytest.fixture
def store_paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str | None, str | None], None]]:
    """Point the default trust store at the given cafile and capath (read afresh)."""

    def point(cafile: str | None, capath: str | None) -> None:
        paths = types.SimpleNamespace(cafile=cafile, capath=capath)
        monkeypatch.setattr(certs.ssl, "get_default_verify_paths", lambda: paths)
        certs.system_trust_store.cache_clear()

    yield point
    certs.system_trust_store.cache_clear()


def test_default_store_from_cafile(
    pki: Pki, tmp_path: Path, store_paths: Callable[[str | None, str | None], None]
) -> None:
    bundle = tmp_path / "bundle.pem"
    # A block that does not parse and a non-certificate block are skipped, not fatal.
    bundle.write_text("# roots\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" + pem(pki.root))
    store_paths(str(bundle), None)
    summary = check_certificate_pair(pem(pki.leaf(), pki.intermediate), key_pem(pki.key), [HOST], now=NOW)
    assert summary.self_signed_chain is False
    assert certs.system_trust_store() == (pki.root,)


def test_default_store_from_capath(
    pki: Pki, tmp_path: Path, store_paths: Callable[[str | None, str | None], None]
) -> None:
    (tmp_path / "root.pem").write_text(pem(pki.root))
    (tmp_path / "abcd1234.0").symlink_to(tmp_path / "root.pem")
    (tmp_path / "README").write_text("not a certificate")
    (tmp_path / "subdir").mkdir()
    store_paths(None, str(tmp_path))
    assert certs.system_trust_store() == (pki.root,)
    assert (
        check_certificate_pair(pem(pki.leaf(), pki.intermediate), key_pem(pki.key), [HOST], now=NOW).self_signed_chain
        is False
    )


def test_default_store_absent(pki: Pki, tmp_path: Path, store_paths: Callable[[str | None, str | None], None]) -> None:
    store_paths(str(tmp_path / "missing.pem"), str(tmp_path / "missing-dir"))
    assert certs.system_trust_store() == ()
    pair_refused("tlsCertificate", pem(pki.leaf(), pki.intermediate), key_pem(pki.key), match="incomplete chain")
    assert check_certificate_pair(
        pem(pki.leaf(), pki.intermediate, pki.root), key_pem(pki.key), [HOST], now=NOW
    ).self_signed_chain


def test_default_store_is_read_once(
    pki: Pki, tmp_path: Path, store_paths: Callable[[str | None, str | None], None]
) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(pem(pki.root))
    store_paths(str(bundle), None)
    first = certs.system_trust_store()
    bundle.write_text("")
    assert certs.system_trust_store() is first


# --- CA bundles --------------------------------------------------------------------------------------------


def test_ca_bundle(pki: Pki) -> None:
    assert check_ca_bundle(pem(pki.root, pki.intermediate), "acmeCaCert") == (pki.root, pki.intermediate)


def test_ca_bundle_accepts_an_old_root_without_extensions() -> None:
    key = _key()
    old_root = _issue("Old Private Root", key.public_key(), None, key, ca=None)
    assert check_ca_bundle(pem(old_root), "acmeCaCert") == (old_root,)


def test_ca_bundle_refuses_a_server_certificate(pki: Pki) -> None:
    message = refused(
        "acmeCaCert", lambda: check_ca_bundle(pem(pki.root, pki.leaf()), "acmeCaCert"), match="certificate 2"
    )
    assert f"(CN={HOST}) is not a CA certificate" in message


def test_ca_bundle_refuses_an_issued_certificate_without_constraints(pki: Pki) -> None:
    plain = _issue("Not A CA", _key().public_key(), pki.root, pki.root_key, ca=None)
    refused("acmeCaCert", lambda: check_ca_bundle(pem(plain), "acmeCaCert"), match="is not a CA certificate")


def test_ca_bundle_refuses_a_private_key(pki: Pki) -> None:
    private = key_pem(pki.root_key)
    message = refused(
        "acmeCaCert",
        lambda: check_ca_bundle(pem(pki.root) + private, "acmeCaCert"),
        secrets=[private],
        match="holds a private key",
    )
    assert "never a key" in message


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "is empty"),
        ("not pem", "must be PEM"),
        ("-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n", "X509 CRL block(s)"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "certificate 1 does not parse"),
    ],
)
def test_ca_bundle_refuses_what_is_not_certificates(text: str, match: str) -> None:
    refused("acmeCaCert", lambda: check_ca_bundle(text, "acmeCaCert"), match=match)

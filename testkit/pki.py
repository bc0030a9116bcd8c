"""Certificates made for a test: a CA, a server certificate for given names or addresses, and an unrelated CA.

One source for every test and kit module that needs TLS material (a database server kept elsewhere, the
proxy with the operator's own certificate, an ACME test server's own HTTPS).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 2


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Certificates:
    """A CA and a server certificate for one IP address, plus an unrelated CA (a client that must refuse)."""

    ca: str
    """The CA's certificate (PEM): what `databaseCaCert` holds."""
    other_ca: str
    """Another CA's certificate (PEM), which did not sign the server's."""
    server_cert: bytes
    """The server's certificate (PEM), SAN = the address."""
    server_key: bytes
    """The server's private key (PEM)."""

    @classmethod
    def for_address(cls, address: str) -> Certificates:
        """Make the CA, the server certificate for `address` and the unrelated CA."""
        return cls.for_names(address)

    @classmethod
    def for_names(cls, *names: str, ca_name: str = "argusai test CA") -> Certificates:
        """Make the CA, a server certificate whose SANs are `names` (DNS names or IP addresses), the other CA."""
        now = datetime.datetime.now(datetime.UTC)

        def ca(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
            key = ec.generate_private_key(ec.SECP256R1())
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
            cert = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                        key_encipherment=False, data_encipherment=False, key_agreement=False,
                        encipher_only=False, decipher_only=False,
                    ),
                    critical=True,
                )
                .sign(key, hashes.SHA256())
            )  # fmt: skip
            return key, cert

        ca_key, ca_cert = ca(ca_name)
        _, other = ca("some other CA")
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName([_san(name) for name in names]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cls(
            ca=_pem_cert(ca_cert).decode(),
            other_ca=_pem_cert(other).decode(),
            server_cert=_pem_cert(server),
            server_key=_pem_key(server_key),
        )


def _san(name: str) -> x509.GeneralName:
    """An IP address SAN for an address, a DNS name SAN otherwise."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)

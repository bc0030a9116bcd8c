"""A PostgreSQL server "kept elsewhere", for `database: external`: outside every stack, reached by address.

The server runs in the test PostgreSQL image on the host's network namespace, listening only on the
address of the engine's default bridge (`docker0`): a stack's containers reach it the way they would reach
a server on another host, through their gateway by address and port, over no network the stack declares,
and nothing else can (that address is local to this machine). TLS is on with a certificate made here whose
subject alternative name is that address, signed by a CA made here (`Certificates`).

The container carries the test stack's label, so `testkit.cleanup.remove_stack` removes it.
"""

from __future__ import annotations

import datetime
import io
import ipaddress
import tarfile
import time
from dataclasses import dataclass
from typing import Any

import docker
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from components.naming import LABEL_ROLE, LABEL_STACK
from testkit.net import free_port

CERT_DIR = "/etc/postgresql-tls"
READY_TIMEOUT_SECONDS = 120
POLL_SECONDS = 0.5
VALID_DAYS = 2
# The test image's postgres user (`id postgres`): the key must be its own and private.
POSTGRES_UID, POSTGRES_GID = 100, 102
PRIVATE_MODE, PUBLIC_MODE = 0o600, 0o644


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

        ca_key, ca_cert = ca("argusai test database CA")
        _, other = ca("some other CA")
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
            .issuer_name(ca_cert.subject)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return cls(
            ca=_pem_cert(ca_cert).decode(),
            other_ca=_pem_cert(other).decode(),
            server_cert=_pem_cert(server),
            server_key=_pem_key(server_key),
        )


def bridge_address(client: docker.DockerClient) -> str:
    """The host's address on the engine's default bridge (dockerd gives it the subnet's first address)."""
    config = client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    return str(config.get("Gateway") or next(ipaddress.ip_network(config["Subnet"]).hosts()))


def _archive(files: dict[str, tuple[bytes, int]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, (content, mode) in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(content), mode
            info.uid, info.gid = POSTGRES_UID, POSTGRES_GID
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@dataclass
class ElsewhereServer:
    """A running server kept elsewhere; `url(...)` is what an operator puts in `databaseUrl`."""

    client: docker.DockerClient
    container: Any
    address: str
    port: int
    user: str
    password: str
    db: str
    certificates: Certificates

    def url(self, sslmode: str = "verify-full") -> str:
        """`postgresql://user:password@address:port/db?sslmode=...`."""
        return f"postgresql://{self.user}:{self.password}@{self.address}:{self.port}/{self.db}?sslmode={sslmode}"

    def psql(self, sql: str) -> str:
        """Run SQL on the server as its owner (inside its container, over its socket); return the output."""
        result = self.container.exec_run(
            [
                "psql",
                "-X",
                "-A",
                "-t",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                self.db,
                "-c",
                sql,
            ],
            user="postgres",
        )
        output = result.output.decode(errors="replace")
        if result.exit_code != 0:
            raise RuntimeError(f"psql failed: {output}")
        return output.strip()


def start_elsewhere(client: docker.DockerClient, image: str, stack: str, password: str) -> ElsewhereServer:
    """Start the server (TLS on, certificates for the bridge address) and wait until it accepts connections."""
    address = bridge_address(client)
    port = free_port()
    certificates = Certificates.for_address(address)
    user = db = "elsewhere"
    container = client.containers.create(
        image,
        [
            "postgres",
            "-c", "ssl=on",
            "-c", f"ssl_cert_file={CERT_DIR}/server.crt",
            "-c", f"ssl_key_file={CERT_DIR}/server.key",
            "-c", f"listen_addresses={address}",
            "-c", f"port={port}",
        ],
        environment={"POSTGRES_USER": user, "POSTGRES_PASSWORD": password, "POSTGRES_DB": db},
        network_mode="host",
        labels={LABEL_STACK: stack, LABEL_ROLE: "elsewhere-postgres"},
    )  # fmt: skip
    container.put_archive(
        "/",
        _archive(
            {
                f"{CERT_DIR}/server.crt": (certificates.server_cert, PUBLIC_MODE),
                f"{CERT_DIR}/server.key": (certificates.server_key, PRIVATE_MODE),
            }
        ),
    )
    container.start()
    server = ElsewhereServer(client, container, address, port, user, password, db, certificates)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while True:
        ready = container.exec_run(["pg_isready", "-h", address, "-p", str(port), "-U", user, "-d", db])
        if ready.exit_code == 0:
            return server
        container.reload()
        if container.status != "running" or time.monotonic() > deadline:
            raise RuntimeError(
                f"the server elsewhere did not start: {container.logs()[-2000:].decode(errors='replace')}"
            )
        time.sleep(POLL_SECONDS)

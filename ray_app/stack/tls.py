"""Certificates for the local stack's TLS listeners: a certificate authority of the state directory's own and a
server certificate it signs for the listener's host (plus localhost and 127.0.0.1).

Clients trust the authority's certificate (``kafka.ssl_ca_location``); nothing else is trusted by it. Keys are
written mode 0600. An existing pair is kept while it is valid for the host and not near its end; otherwise it is
made again (the authority too, once it no longer verifies the server certificate).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 825
RENEW_WITHIN_DAYS = 30


@dataclass(frozen=True)
class ServerCertificate:
    """Where a listener's key pair and its authority live (PEM files)."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path
    keystore: Path  # the private key and the certificate chain in one PEM file, as Kafka's PEM keystore wants


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    temporary.replace(path)


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    try:
        address = ipaddress.ip_address(host)
        if x509.IPAddress(address) not in names:
            names.append(x509.IPAddress(address))
    except ValueError:
        if host != "localhost":
            names.append(x509.DNSName(host))
    return names


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _usable(files: ServerCertificate, host: str) -> bool:
    if not all(path.is_file() for path in (files.ca_cert, files.ca_key, files.cert, files.key, files.keystore)):
        return False
    try:
        ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound):
        return False
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=RENEW_WITHIN_DAYS)
    return all(name in sans for name in _names(host)) and min(ca.not_valid_after_utc, cert.not_valid_after_utc) > soon


def ensure_server_certificate(directory: Path, host: str, service: str) -> ServerCertificate:
    """The authority and a server certificate for ``host`` in ``directory``, made now when missing or stale."""
    files = ServerCertificate(
        directory / "ca.pem",
        directory / "ca-key.pem",
        directory / f"{service}.pem",
        directory / f"{service}-key.pem",
        directory / f"{service}-keystore.pem",
    )
    if _usable(files, host):
        return files
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ray-app local stack CA ({directory})"[:64])])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{service} {host}"[:64])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(_names(host)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    _write(files.ca_key, _pem_key(ca_key), private=True)
    _write(files.key, _pem_key(key), private=True)
    _write(files.keystore, _pem_key(key) + cert_pem + ca_pem, private=True)
    _write(files.cert, cert_pem + ca_pem)
    _write(files.ca_cert, ca_pem)
    return files

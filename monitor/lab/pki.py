"""The lab CA and the certificates it issues: per-unit portal and mail server certificates and
the units' signing certificates (the files the ``certfile`` probe reads).

Lab only: every leaf shares one ECDSA P-256 key (one key generation instead of 10,000 at the
national scale); each certificate is still distinct, with its own names and validity.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "wardwatch lab CA"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True, slots=True)
class Issued:
    path: Path  # PEM certificate (the leaf, then the CA)
    not_after: dt.datetime


class LabCA:
    """A CA in ``directory``: ``ca.pem`` (the bundle clients trust), ``pki/`` (key, leaf key)."""

    def __init__(self, directory: Path, now: dt.datetime | None = None) -> None:
        self.now = now or dt.datetime.now(dt.UTC)
        self.dir = directory
        (directory / "pki").mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(CA_NAME))
            .issuer_name(_name(CA_NAME))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=30))
            .not_valid_after(self.now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.bundle = directory / "ca.pem"
        self.bundle.write_bytes(self.ca_pem)
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        self.leaf_key_path = directory / "pki" / "leaf.key"
        self.leaf_key_path.write_bytes(
            self.leaf_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        self.leaf_key_path.chmod(0o600)

    def _sign(self, builder: x509.CertificateBuilder, days: float) -> tuple[x509.Certificate, dt.datetime]:
        not_after = self.now + dt.timedelta(days=days)
        not_before = min(self.now - dt.timedelta(days=1), not_after - dt.timedelta(days=90))
        cert = (
            builder.issuer_name(self.cert.subject)
            .public_key(self.leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        return cert, not_after

    def server(self, path: Path, hosts: list[str], days: float) -> Issued:
        """A TLS server certificate for ``hosts`` valid for ``days`` more days (negative: expired)."""
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(hosts[0]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        )
        cert, not_after = self._sign(builder, days)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.ca_pem)
        return Issued(path, not_after)

    def signing(self, path: Path, holder: str, days: float) -> Issued:
        """A unit's document-signing certificate (what the ``certfile`` probe watches)."""
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(holder))
            .add_extension(
                x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
            )
        )
        cert, not_after = self._sign(builder, days)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return Issued(path, not_after)

"""Pure helpers that describe X.509 certificates; shared by the tls, tcp (STARTTLS),
http and certfile probes so every certificate is reported the same way."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtensionOID, NameOID

from probes.base import Sample


@dataclass(slots=True, frozen=True)
class CertInfo:
    subject: str
    issuer: str
    common_name: str
    serial: str  # lower-case hex, like blackbox_exporter's serialnumber label
    not_before: datetime
    not_after: datetime
    sans: tuple[str, ...]
    fingerprint_sha256: str
    self_signed: bool

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400.0


def _rfc4514(name: x509.Name) -> str:
    # blackbox_exporter prints the Go pkix.Name String() form, e.g. "CN=x,O=y".
    return name.rfc4514_string()


def describe(cert: x509.Certificate) -> CertInfo:
    """What a certificate says; ValueError when a field cannot be read (cryptography parses
    lazily and raises more than ValueError, e.g. DuplicateExtension)."""
    try:
        return _describe(cert)
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"unreadable certificate: {type(e).__name__}: {e}") from e


def _describe(cert: x509.Certificate) -> CertInfo:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        san = ext.value
        assert isinstance(san, x509.SubjectAlternativeName)
        sans = tuple(san.get_values_for_type(x509.DNSName)) + tuple(
            str(ip) for ip in san.get_values_for_type(x509.IPAddress)
        )
    except x509.ExtensionNotFound:
        sans = ()
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else ""
    der = cert.public_bytes(serialization.Encoding.DER)
    return CertInfo(
        subject=_rfc4514(cert.subject),
        issuer=_rfc4514(cert.issuer),
        common_name=cn,
        serial=format(cert.serial_number, "x"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sans=sans,
        fingerprint_sha256=hashlib.sha256(der).hexdigest(),
        self_signed=cert.subject == cert.issuer,
    )


# What cryptography raises on a malformed certificate besides ValueError.
PARSE_ERRORS = (ValueError, x509.InvalidVersion)


def describe_der(der: bytes) -> CertInfo:
    """``describe`` of DER bytes; ValueError when they are no readable certificate."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except PARSE_ERRORS as e:  # InvalidVersion is no ValueError
        raise ValueError(f"not a certificate: {e}") from e
    return describe(cert)


def chain_samples(chain: list[CertInfo]) -> tuple[Sample, ...]:
    """blackbox_exporter's TLS series for a peer chain (leaf first)."""
    if not chain:
        return ()
    earliest = min(c.not_after for c in chain)
    leaf = chain[0]
    return (
        Sample("probe_ssl_earliest_cert_expiry", earliest.timestamp()),
        Sample("probe_ssl_last_chain_expiry_timestamp_seconds", earliest.timestamp()),
        Sample(
            "probe_ssl_last_chain_info",
            1.0,
            (
                ("fingerprint_sha256", leaf.fingerprint_sha256),
                ("subject", leaf.subject),
                ("issuer", leaf.issuer),
                ("subjectalternative", ",".join(leaf.sans)),
                ("serialnumber", leaf.serial),
            ),
        ),
    )


def now_utc() -> datetime:
    return datetime.now(UTC)

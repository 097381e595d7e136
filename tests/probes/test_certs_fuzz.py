"""Fuzzing certificate parsing: random and mutated DER and PEM through ``certs.describe_der``
(what the tls, http, sip and email probes do with a peer's chain) and through the certfile
probe's reading of files (PEM, DER, PKCS#12)."""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from hypothesis import example, given
from hypothesis import strategies as st

from probes import certfile, certs
from probes.base import ProbeContext, Reason
from tests.fuzzing import assert_reasoned, fuzzed, mutated


def _cert() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phuong-sai-gon.example.invalid"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "UBND Phường Sài Gòn")])
    now = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
    names = [x509.DNSName("phuong-sai-gon.example.invalid")]
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(0x1F2E).not_valid_before(now).not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.IssuerAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


CERT, KEY = _cert()
DER = CERT.public_bytes(serialization.Encoding.DER)
PEM = CERT.public_bytes(serialization.Encoding.PEM)
P12 = pkcs12.serialize_key_and_certificates(b"unit", KEY, CERT, None, serialization.NoEncryption())
# The IssuerAlternativeName's OID (2.5.29.18) turned into a second SubjectAlternativeName
# (2.5.29.17): cryptography raises DuplicateExtension, not ValueError, when it is read.
DUPLICATE = DER.replace(b"\x06\x03\x55\x1d\x12", b"\x06\x03\x55\x1d\x11")
assert DUPLICATE != DER
# Version 4 (INTEGER 3): cryptography raises InvalidVersion, no ValueError, from the load itself.
VERSION_4 = DER.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x03", 1)
assert VERSION_4 != DER


@given(fuzzed([DER, DUPLICATE]))
@example(DUPLICATE)  # escaped peer_chain as DuplicateExtension: internal_error in tls/http/sip/email
@example(VERSION_4)  # found by HYPOTHESIS_PROFILE=long
def test_describe_der_reads_or_says_why(data: bytes) -> None:
    try:
        info = certs.describe_der(data)
    except ValueError as e:
        assert str(e)
        return
    assert len(info.fingerprint_sha256) == 64
    certs.chain_samples([info])


def _read(name: str, data: bytes) -> certfile.FileResult:
    with tempfile.TemporaryDirectory(prefix="wardwatch-fuzz-") as d:
        path = Path(d) / name
        path.write_bytes(data)
        (result,) = certfile.scan(str(path), certfile.Config())
    return result


_FILES = st.one_of(
    st.tuples(st.just("unit.pem"), fuzzed([PEM, PEM + PEM, PEM.replace(DER[:3], DUPLICATE[:3])])),
    st.tuples(st.just("unit.der"), fuzzed([DER, DUPLICATE])),
    st.tuples(st.just("unit.p12"), st.sampled_from([P12]).flatmap(lambda s: mutated(s, max_ops=4))),
    st.tuples(st.sampled_from(["a.pem", "a.crt"]), st.text(max_size=200).map(
        lambda t: f"-----BEGIN CERTIFICATE-----\n{t}\n-----END CERTIFICATE-----\n".encode())),
)


@given(_FILES)
@example(("unit.der", DUPLICATE))  # raised out of the scan: internal_error for the whole directory
@example(("unit.der", VERSION_4))
@example(("unit.pem", VERSION_4))
def test_certfile_reads_any_file(case: tuple[str, bytes]) -> None:
    name, data = case
    result = _read(name, data)
    assert result.certs or result.reason in (Reason.CERT_UNREADABLE, Reason.CERT_BAD_PASSWORD), result
    if result.reason is not None:
        assert result.error


def test_certfile_probe_on_a_directory_with_a_bad_certificate(tmp_path: Path) -> None:
    (tmp_path / "good.pem").write_bytes(PEM)
    (tmp_path / "bad.der").write_bytes(DUPLICATE)
    result = asyncio.run(certfile.run(str(tmp_path), certfile.Config(), ProbeContext(timeout=5)))
    assert_reasoned(result)
    assert result.reason in (Reason.CERT_UNREADABLE, Reason.CERT_EXPIRED), result  # the good one expires 2025-09
    assert result.value("wardwatch_certfile_read_errors", file=str(tmp_path / "bad.der")) == 1.0

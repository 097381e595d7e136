"""certfile probe over certificates minted by the test CA, in every file format."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from pydantic import ValidationError

from probes import certfile
from probes.base import ProbeContext, ProbeResult, Reason
from probes.certs import describe
from tests.peers import pki


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> pki.TestCA:
    return pki.TestCA(tmp_path_factory.mktemp("ca"))


async def probe(target: Path | str, **cfg: object) -> ProbeResult:
    return await certfile.run(str(target), certfile.Config.model_validate(cfg), ProbeContext(timeout=5))


def write_p12(path: Path, leaf: pki.Issued, ca: pki.TestCA, password: bytes) -> Path:
    key = serialization.load_pem_private_key(leaf.key.read_bytes(), None)
    data = pkcs12.serialize_key_and_certificates(
        b"leaf", key, leaf.x509, [ca.cert],  # type: ignore[arg-type]
        serialization.BestAvailableEncryption(password),
    )
    path.write_bytes(data)
    return path


async def test_pem_with_chain(ca: pki.TestCA, tmp_path: Path) -> None:
    leaf = ca.issue("portal", ["portal.test"], days=30)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(leaf.cert.read_bytes() + ca.bundle.read_bytes())
    r = await probe(bundle)
    assert r.success, r.message
    assert r.value("wardwatch_certfile_certificates") == 2
    info = describe(leaf.x509)
    ts = r.value("wardwatch_certfile_not_after_timestamp_seconds", file=str(bundle), serial=info.serial)
    assert ts == leaf.x509.not_valid_after_utc.timestamp()
    assert r.value("wardwatch_certfile_not_after_timestamp_seconds", subject=info.subject, issuer=info.issuer)
    days = r.value("wardwatch_certfile_days_left", serial=info.serial)
    assert days is not None and 29.9 < days <= 30
    assert r.value("probe_ssl_earliest_cert_expiry") == leaf.x509.not_valid_after_utc.timestamp()


async def test_der(ca: pki.TestCA, tmp_path: Path) -> None:
    leaf = ca.issue("der", ["der.test"])
    der = tmp_path / "leaf.der"
    der.write_bytes(leaf.x509.public_bytes(serialization.Encoding.DER))
    r = await probe(der)
    assert r.success, r.message
    assert r.value("wardwatch_certfile_certificates") == 1


async def test_pkcs12_password(ca: pki.TestCA, tmp_path: Path) -> None:
    leaf = ca.issue("p12", ["p12.test"])
    p12 = write_p12(tmp_path / "leaf.p12", leaf, ca, b"s3cret")
    ok = await probe(p12, password="s3cret")
    assert ok.success, ok.message
    assert ok.value("wardwatch_certfile_certificates") == 2
    (tmp_path / "pw").write_text("s3cret\n")
    from_file = await probe(p12, password_file=str(tmp_path / "pw"))
    assert from_file.success, from_file.message
    wrong = await probe(p12, password="nope")
    assert not wrong.success and wrong.reason is Reason.CERT_BAD_PASSWORD
    assert wrong.value("wardwatch_certfile_read_errors", file=str(p12), reason="cert_bad_password") == 1
    missing = await probe(p12)
    assert missing.reason is Reason.CERT_BAD_PASSWORD


async def test_directory_with_mixed_files(ca: pki.TestCA, tmp_path: Path) -> None:
    leaf = ca.issue("dir-a", ["a.test"], days=10)
    (tmp_path / "a.crt").write_bytes(leaf.cert.read_bytes())
    (tmp_path / "b.der").write_bytes(ca.cert.public_bytes(serialization.Encoding.DER))
    write_p12(tmp_path / "c.pfx", ca.issue("dir-c", ["c.test"]), ca, b"pw")
    (tmp_path / "garbage.pem").write_bytes(b"this is not a certificate\n")
    (tmp_path / "notes.txt").write_text("ignored: not a certificate extension")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "deep.pem").write_bytes(ca.issue("deep", ["deep.test"]).cert.read_bytes())

    r = await probe(tmp_path, password="pw")
    assert not r.success and r.reason is Reason.CERT_UNREADABLE
    assert "garbage.pem" in r.message
    assert r.value("wardwatch_certfile_files") == 4
    assert r.value("wardwatch_certfile_certificates") == 4  # a, b, c (leaf + CA)
    assert r.value("wardwatch_certfile_read_errors", file=str(tmp_path / "garbage.pem")) == 1
    assert r.value("probe_ssl_earliest_cert_expiry") == leaf.x509.not_valid_after_utc.timestamp()

    deep = await probe(tmp_path, password="pw", recursive=True)
    assert deep.value("wardwatch_certfile_files") == 5
    assert deep.value("wardwatch_certfile_certificates") == 5

    (tmp_path / "garbage.pem").unlink()
    assert (await probe(tmp_path, password="pw")).success
    wrong = await probe(tmp_path, password="other")  # one bad file, the others still read
    assert wrong.reason is Reason.CERT_BAD_PASSWORD
    assert wrong.value("wardwatch_certfile_certificates") == 2


async def test_expired_and_expiring(ca: pki.TestCA, tmp_path: Path) -> None:
    old = ca.issue("old", ["old.test"], days=-2)
    r = await probe(old.cert)
    assert not r.success and r.reason is Reason.CERT_EXPIRED
    assert "old.test" in r.message
    days = r.value("wardwatch_certfile_days_left")
    assert days is not None and days < 0
    soon = ca.issue("soon", ["soon.test"], days=5)
    assert (await probe(soon.cert)).success
    warn = await probe(soon.cert, fail_if_expires_within_days=7)
    assert not warn.success and warn.reason is Reason.CERT_EXPIRES_SOON
    assert "expires in" in warn.message


async def test_missing_path_and_empty_dir(tmp_path: Path) -> None:
    r = await probe(tmp_path / "nope.pem")
    assert not r.success and r.reason is Reason.FILE_NOT_FOUND
    empty = await probe(tmp_path)
    assert not empty.success and empty.reason is Reason.FILE_NOT_FOUND


async def test_key_only_pem_is_unreadable(ca: pki.TestCA) -> None:
    leaf = ca.issue("keyonly", ["k.test"])
    r = await probe(leaf.key)
    assert not r.success and r.reason is Reason.CERT_UNREADABLE


def test_config_rejects_both_passwords() -> None:
    with pytest.raises(ValidationError, match="give only one of password, password_env, password_file"):
        certfile.Config(password="a", password_file="/x")

"""Certificates seen in probe results, and the expiry tier each one is in.

A TLS endpoint (http, tls, tcp with TLS, e-mail STARTTLS) reports the earliest expiry of its
chain as ``probe_ssl_earliest_cert_expiry``; the certfile probe reports every certificate it
read as ``wardwatch_certfile_not_after_timestamp_seconds{file, serial, ...}``. A certificate
is identified by the target, its subject within the target (file and serial; "" for an
endpoint) and its notAfter: a renewed certificate is a new one, with tiers of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from probes.base import ProbeResult

ENDPOINT_EXPIRY = "probe_ssl_earliest_cert_expiry"
FILE_EXPIRY = "wardwatch_certfile_not_after_timestamp_seconds"
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class SeenCert:
    subject: str  # "" for an endpoint's chain; "file#serial" for a certificate file
    not_after: float  # unix seconds
    labels: tuple[tuple[str, str], ...] = ()

    @property
    def ident(self) -> str:
        return f"{self.subject}@{int(self.not_after)}"


def seen_certs(result: ProbeResult) -> list[SeenCert]:
    """Every certificate a result reports (none when it carries no expiry data)."""
    files: list[SeenCert] = []
    endpoint: float | None = None
    for s in result.samples:
        if s.name == FILE_EXPIRY:
            lab = dict(s.labels)
            file, serial = lab.get("file", ""), lab.get("serial", "")
            files.append(SeenCert(f"{file}#{serial}", s.value, (("file", file), ("serial", serial))))
        elif s.name == ENDPOINT_EXPIRY and endpoint is None:
            endpoint = s.value
    if files:  # the certfile probe also reports the earliest: its files already say it all
        return files
    return [SeenCert("", endpoint)] if endpoint is not None else []


def tier_of(not_after: float, now: float, tiers: tuple[int, ...]) -> int | None:
    """0 = expired; else the smallest tier (days) the remaining time falls within; None = no tier."""
    left = not_after - now
    if left <= 0:
        return 0
    days = left / DAY
    inside = [t for t in tiers if days <= t]
    return min(inside) if inside else None

"""Certificates seen in probe results, and the expiry tier each one is in.

A TLS endpoint (http, tls, tcp with TLS, e-mail STARTTLS) reports the earliest expiry of its
chain as ``probe_ssl_earliest_cert_expiry``; the certfile probe reports every certificate it
read as ``wardwatch_certfile_not_after_timestamp_seconds{file, serial, ...}``.

A certificate's identity (``SeenCert.identity``) is what it is, not where it was seen, so one
certificate served by several endpoints (a portal, its old domains redirecting to it, a
``certs`` tls target; in one unit or several) is one certificate:

- an endpoint's chain: the leaf's ``fingerprint_sha256`` (``probe_ssl_last_chain_info``) and the
  chain's earliest notAfter: ``sha256:<fingerprint>@<notAfter>``; a probe that reports no chain
  info falls back to the endpoint itself: ``<target key>#@<notAfter>``;
- a certificate file: ``file:<file>#<serial>@<notAfter>`` (the certfile probe reads files on the
  monitoring host: one path is one file, whichever targets list it).

A renewed certificate is a new one (another fingerprint or serial, another notAfter), with tiers
of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from probes.base import ProbeResult

ENDPOINT_EXPIRY = "probe_ssl_earliest_cert_expiry"
CHAIN_INFO = "probe_ssl_last_chain_info"
FILE_EXPIRY = "wardwatch_certfile_not_after_timestamp_seconds"
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class SeenCert:
    subject: str  # "" for an endpoint's chain; "file#serial" for a certificate file
    not_after: float  # unix seconds
    labels: tuple[tuple[str, str], ...] = ()
    fingerprint: str = ""  # an endpoint's leaf, sha256 hex; "" when the probe did not say

    @property
    def ident(self) -> str:
        """Within one target (the engine's state format 1 keyed certificates by target + this)."""
        return f"{self.subject}@{int(self.not_after)}"

    def identity(self, target_key: str) -> str:
        """The certificate itself, wherever it was seen (see the module's docstring)."""
        if self.subject:
            return f"file:{self.subject}@{int(self.not_after)}"
        if self.fingerprint:
            return f"sha256:{self.fingerprint}@{int(self.not_after)}"
        return f"{target_key}#{self.ident}"


def seen_certs(result: ProbeResult) -> list[SeenCert]:
    """Every certificate a result reports (none when it carries no expiry data)."""
    files: list[SeenCert] = []
    endpoint: float | None = None
    fingerprint = ""
    for s in result.samples:
        if s.name == FILE_EXPIRY:
            lab = dict(s.labels)
            file, serial = lab.get("file", ""), lab.get("serial", "")
            files.append(SeenCert(f"{file}#{serial}", s.value, (("file", file), ("serial", serial))))
        elif s.name == ENDPOINT_EXPIRY and endpoint is None:
            endpoint = s.value
        elif s.name == CHAIN_INFO and not fingerprint:
            fingerprint = dict(s.labels).get("fingerprint_sha256", "")
    if files:  # the certfile probe also reports the earliest: its files already say it all
        return files
    if endpoint is None:
        return []
    return [SeenCert("", endpoint, (("fingerprint_sha256", fingerprint),) if fingerprint else (), fingerprint)]


def tier_of(not_after: float, now: float, tiers: tuple[int, ...]) -> int | None:
    """0 = expired; else the smallest tier (days) the remaining time falls within; None = no tier."""
    left = not_after - now
    if left <= 0:
        return 0
    days = left / DAY
    inside = [t for t in tiers if days <= t]
    return min(inside) if inside else None

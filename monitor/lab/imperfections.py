"""The faults every lab ships with, so a demo has something to show from the first round.

Chosen by position, ``index = n * j // 10`` for j = 1..8 over the n units, so they exist
(spread out) for any count of 10 units or more; with fewer, colliding ones are dropped.

====  =================  ======================================================  ===========================
 j    kind               what the lab does                                       what the monitor reports
====  =================  ======================================================  ===========================
 1    cert_expires_soon  portal certificate expires in 5 days                    certs/tls tls_expires_soon
 2    cert_expires_soon  portal certificate expires in 12 days                   certs/tls tls_expires_soon
 3    signing_soon       signing certificate file expires in 9 days              certs/certfile cert_expires_soon
 4    cert_expired       portal certificate expired 3 days ago                   portal + certs tls_expired
 5    hostname_mismatch  portal certificate names another host                   portal + certs tls_hostname_mismatch
 6    redirect_missing   the first old domain serves 200 itself, no redirect     portal (old domain) redirect_missing
 7    portal_503         the portal answers 503                                  portal http_status
 8    slow_portal        the portal answers after 1.5 x the probe timeout        portal timeout
====  =================  ======================================================  ===========================

The inventory asks ``tls`` and ``certfile`` probes to fail within 14 days of expiry
(``fail_if_expires_within_days: 14``). Old domains redirect to their portal and the http probe
follows, so a broken portal shows on its old domains too (listed in ``expected``).
"""

from __future__ import annotations

from dataclasses import dataclass

SOON_DAYS = 14.0
SLOW_FACTOR = 1.5  # the slow portal answers after this many probe timeouts


@dataclass(frozen=True, slots=True)
class Kind:
    j: int
    kind: str
    description: str
    cert_days: float | None = None  # portal certificate validity (None: 397 days)
    signing_days: float | None = None


KINDS: tuple[Kind, ...] = (
    Kind(1, "cert_expires_soon", "portal certificate expires in 5 days", cert_days=5),
    Kind(2, "cert_expires_soon", "portal certificate expires in 12 days", cert_days=12),
    Kind(3, "signing_soon", "signing certificate file expires in 9 days", signing_days=9),
    Kind(4, "cert_expired", "portal certificate expired 3 days ago", cert_days=-3),
    Kind(5, "hostname_mismatch", "portal certificate is for another host name"),
    Kind(6, "redirect_missing", "first old domain serves 200 itself instead of redirecting"),
    Kind(7, "portal_503", "portal answers 503 Service Unavailable"),
    Kind(8, "slow_portal", f"portal answers after {SLOW_FACTOR:g} x the probe timeout"),
)


def assign(n: int) -> dict[int, Kind]:
    """Unit index -> its imperfection, for a lab of ``n`` units."""
    out: dict[int, Kind] = {}
    for k in KINDS:
        i = n * k.j // 10
        if 0 <= i < n and i not in out:
            out[i] = k
    return out

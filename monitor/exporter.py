"""The /metrics exposition: every target's last observations plus wardwatch's own.

A hand-made renderer of the Prometheus text format (0.0.4), not prometheus_client
metric objects: at 33k targets x ~20 series the labelled-object route costs seconds
and hundreds of MiB (NOTES-libraries.md). Rendering is a pure function of a
snapshot taken on the event loop (``snapshot``) and runs in a worker thread
(``MetricsRenderer.render``), so probes keep their timing while it works.

Every family appears once, with its HELP and TYPE, its samples together
(``promtool check metrics`` insists). Metric names follow blackbox_exporter so its
dashboards and rules keep working; each per-target series also carries the target
labels province, unit_code, unit, service, probe and target.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from monitor import __version__
from monitor.placement import Placement
from monitor.state import STATE_VALUE, State, Status
from monitor.targets import SERVICES, Target
from probes.base import ProbeResult, Sample
from probes.registry import KINDS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

GAUGE, COUNTER, HISTOGRAM = "gauge", "counter", "histogram"

# name -> (type, help). Order here is the order families are written in.
METRICS: dict[str, tuple[str, str]] = {
    # -- blackbox_exporter's names (added by the runner or by the probes) --
    "probe_success": (GAUGE, "Displays whether or not the probe was a success"),
    "probe_duration_seconds": (GAUGE, "Returns how long the probe took to complete in seconds"),
    "probe_timeout_seconds": (GAUGE, "Returns how long the probe may take before it is timed out"),
    "probe_dns_lookup_time_seconds": (GAUGE, "Returns the time taken for probe dns lookup in seconds"),
    "probe_ip_protocol": (GAUGE, "Specifies whether probe ip protocol is IP4 or IP6"),
    "probe_http_status_code": (GAUGE, "Response HTTP status code"),
    "probe_http_duration_seconds": (GAUGE, "Duration of http request by phase, summed over all redirects"),
    "probe_http_redirects": (GAUGE, "The number of redirects"),
    "probe_http_ssl": (GAUGE, "Indicates if SSL was used for the final redirect"),
    "probe_http_version": (GAUGE, "Returns the version of HTTP of the probe response"),
    "probe_http_content_length": (GAUGE, "Length of http content response"),
    "probe_http_uncompressed_body_length": (GAUGE, "Length of uncompressed response body"),
    "probe_failed_due_to_regex": (GAUGE, "Indicates if probe failed due to regex"),
    "probe_http_last_modified_timestamp_seconds": (
        GAUGE,
        "Returns the Last-Modified HTTP response header in unixtime",
    ),
    "probe_ssl_earliest_cert_expiry": (GAUGE, "Returns earliest SSL cert expiry in unixtime"),
    "probe_ssl_last_chain_expiry_timestamp_seconds": (GAUGE, "Returns last SSL chain expiry in timestamp"),
    "probe_ssl_last_chain_info": (GAUGE, "Contains SSL leaf certificate information"),
    "probe_tls_version_info": (GAUGE, "Contains the TLS version used"),
    "probe_tls_cipher_info": (GAUGE, "Contains the TLS cipher negotiated during handshake"),
    "probe_icmp_duration_seconds": (GAUGE, "Duration of icmp request by phase"),
    "probe_icmp_reply_hop_limit": (GAUGE, "Replied packet hop limit (TTL for ipv4)"),
    "probe_dns_duration_seconds": (GAUGE, "Duration of DNS request by phase"),
    "probe_dns_answer_rrs": (GAUGE, "Returns number of entries in the answer resource record list"),
    "probe_dns_authority_rrs": (GAUGE, "Returns number of entries in the authority resource record list"),
    "probe_dns_additional_rrs": (GAUGE, "Returns number of entries in the additional resource record list"),
    "probe_dns_query_succeeded": (GAUGE, "Displays whether or not the query was executed successfully"),
    "probe_dns_serial": (GAUGE, "Returns the serial number of the zone"),
    # -- wardwatch, per target --
    "wardwatch_target_state": (GAUGE, "State of the target: -1 unknown, 0 down, 1 up"),
    "wardwatch_target_last_change_timestamp_seconds": (
        GAUGE,
        "Unix time the target's current state began",
    ),
    "wardwatch_target_last_probe_timestamp_seconds": (GAUGE, "Unix time of the target's last probe result"),
    "wardwatch_target_failure_reason_info": (
        GAUGE,
        "Why a down target is failing: 1 for the current reason, absent while up",
    ),
    # -- wardwatch, about itself --
    "wardwatch_schedule_lateness_seconds": (HISTOGRAM, "How late probes started after they were due"),
    "wardwatch_probes_in_flight": (GAUGE, "Probes running now"),
    "wardwatch_probes_total": (COUNTER, "Probes run, by probe kind and result"),
    "wardwatch_probe_failures_total": (COUNTER, "Failed probes, by probe kind and reason"),
    "wardwatch_inventory_reloads_total": (COUNTER, "Inventory reloads, by result"),
    "wardwatch_inventory_last_reload_success_timestamp_seconds": (
        GAUGE,
        "Unix time of the last successful inventory reload",
    ),
    "wardwatch_store_errors_total": (COUNTER, "Failed writes to or reads from the state store"),
    # -- the built-in alerting (alerts/service.py; only while it runs) --
    "wardwatch_notifications_total": (
        COUNTER,
        "Notification delivery attempts by receiver and result (delivered; failed: retried; refused: not retried)",
    ),
    "wardwatch_outbox_pending": (GAUGE, "Notifications not yet delivered and still retried, by receiver"),
    "wardwatch_alerts": (GAUGE, "Alerts of the built-in engine by severity and state (active, suppressed, acked)"),
    "wardwatch_targets": (GAUGE, "Targets monitored, by service and state"),
    "wardwatch_metrics_render_seconds": (GAUGE, "How long the previous /metrics render took"),
    "wardwatch_build_info": (GAUGE, "Build information; the value is always 1"),
    "wardwatch_instance_info": (
        GAUGE,
        "Where this instance probes from (vantage) and its share (shard I/N, replicas); always 1",
    ),
    # Series blackbox_exporter lacks, added beside its own (never changing their meaning).
    "wardwatch_icmp_packets_sent": (GAUGE, "ICMP echo requests sent in the last probe"),
    "wardwatch_icmp_packets_received": (GAUGE, "ICMP echo replies received in the last probe"),
    "wardwatch_icmp_loss_ratio": (GAUGE, "Share of ICMP echo requests without a reply in the last probe (0-1)"),
    "wardwatch_icmp_rtt_seconds": (GAUGE, "ICMP round-trip time of the last probe by stat (min, avg, max, stddev)"),
    "wardwatch_http_first_hop_ssl_earliest_cert_expiry": (
        GAUGE,
        "Earliest certificate expiry (unix time) of the first host asked, when it redirected elsewhere",
    ),
    "wardwatch_http_redirect_hop": (GAUGE, "HTTP status code of each hop of the last redirect chain"),
    "wardwatch_tls_chain_verified": (GAUGE, "Whether the peer chain verified against the trusted CAs (1) or not (0)"),
    "wardwatch_tls_hostname_match": (GAUGE, "Whether the certificate matches the host name asked for (1) or not (0)"),
    "wardwatch_tls_cert_days_left": (GAUGE, "Days until the earliest certificate of the peer chain expires"),
    "wardwatch_dns_servers_agree": (GAUGE, "Whether every listed nameserver gave the same answer (1) or not (0)"),
    "wardwatch_dns_server_serial": (GAUGE, "SOA serial reported by each nameserver compared"),
    "wardwatch_certfile_not_after_timestamp_seconds": (GAUGE, "notAfter (unix time) of each certificate in a file"),
    "wardwatch_certfile_days_left": (GAUGE, "Days until each certificate in a file expires"),
    "wardwatch_certfile_read_errors": (GAUGE, "Certificate files that could not be read, by reason"),
    "wardwatch_certfile_files": (GAUGE, "Certificate files read"),
    "wardwatch_certfile_certificates": (GAUGE, "Certificates found in the files read"),
    "wardwatch_sip_status_code": (GAUGE, "Status code of the final SIP response to OPTIONS"),
    "wardwatch_sip_response_seconds": (GAUGE, "Seconds from the first OPTIONS sent to the final response"),
    "wardwatch_sip_retransmissions": (GAUGE, "OPTIONS retransmissions over UDP in the last probe"),
    "wardwatch_sip_server_info": (GAUGE, "Server and User-Agent headers of the SIP response; the value is 1"),
    "wardwatch_stun_rtt_seconds": (GAUGE, "Seconds from the last Binding request sent to its response"),
    "wardwatch_stun_mapped_address_info": (GAUGE, "Mapped address the STUN server reported; the value is 1"),
    "wardwatch_stun_retransmissions": (GAUGE, "STUN Binding request retransmissions in the last probe"),
    "wardwatch_stun_error_code": (GAUGE, "ERROR-CODE of a STUN Binding error response"),
    "wardwatch_email_mx_records": (GAUGE, "MX records of the mail domain"),
    "wardwatch_email_mx_up": (GAUGE, "Whether each MX accepted SMTP, EHLO and STARTTLS with a valid certificate"),
    "wardwatch_email_smtp_banner_info": (GAUGE, "SMTP greeting of each MX (truncated); the value is 1"),
    "wardwatch_email_mx_ssl_earliest_cert_expiry": (
        GAUGE,
        "Earliest certificate expiry (unix time) of each MX's STARTTLS chain",
    ),
    # snmp probe: snmp_exporter's if_mib names (labels ifIndex, ifName, ifDescr), raw values.
    "sysUpTime": (
        GAUGE,
        "The time (in hundredths of a second) since the network management portion of the system "
        "was last re-initialized.",
    ),
    "ifOperStatus": (
        GAUGE,
        "The current operational state of the interface - 1=up, 2=down, 3=testing, 4=unknown, "
        "5=dormant, 6=notPresent, 7=lowerLayerDown",
    ),
    "ifAdminStatus": (GAUGE, "The desired state of the interface - 1=up, 2=down, 3=testing"),
    "ifHCInOctets": (
        COUNTER,
        "The total number of octets received on the interface, including framing characters (64-bit)",
    ),
    "ifHCOutOctets": (
        COUNTER,
        "The total number of octets transmitted out of the interface, including framing characters (64-bit)",
    ),
    "ifHighSpeed": (GAUGE, "An estimate of the interface's current bandwidth in units of 1,000,000 bits per second"),
    "ifInErrors": (
        COUNTER,
        "The number of inbound packets that contained errors preventing them from being deliverable",
    ),
    "ifOutErrors": (COUNTER, "The number of outbound packets that could not be transmitted because of errors"),
    "ifInDiscards": (COUNTER, "The number of inbound packets discarded even though no errors had been detected"),
    "ifOutDiscards": (COUNTER, "The number of outbound packets discarded even though no errors had been detected"),
    "wardwatch_snmp_if_in_bits_per_second": (
        GAUGE,
        "Bits per second received on the interface between the last two polls",
    ),
    "wardwatch_snmp_if_out_bits_per_second": (
        GAUGE,
        "Bits per second sent on the interface between the last two polls",
    ),
    "wardwatch_snmp_if_utilisation_ratio": (
        GAUGE,
        "Share of ifHighSpeed used between the last two polls, by direction",
    ),
    "wardwatch_snmp_if_errors_per_second": (
        GAUGE,
        "Interface errors and discards per second between the last two polls, by direction and kind",
    ),
    "wardwatch_snmp_reboot_detected": (
        GAUGE,
        "1 when sysUpTime went backwards since the previous poll (rates skipped), else 0",
    ),
    # link quality (SmokePing-style rounds)
    "wardwatch_link_packets_sent": (GAUGE, "Echo requests sent in the last link-quality round"),
    "wardwatch_link_packets_received": (GAUGE, "Echo replies received in the last link-quality round"),
    "wardwatch_link_loss_ratio": (GAUGE, "Share of echo requests without a reply in the last round (0-1)"),
    "wardwatch_link_rtt_seconds": (GAUGE, "RTT of the last round by stat (min, median, p90, p95, max, mean)"),
    "wardwatch_link_jitter_seconds": (GAUGE, "Mean absolute difference of consecutive RTTs in the last round"),
    "wardwatch_link_quality": (GAUGE, "Link quality of the last round: 2 good, 1 degraded, 0 down"),
}

FALLBACK_WARDWATCH = (GAUGE, "wardwatch probe observation")
FALLBACK_PROBE = (GAUGE, "blackbox-compatible probe observation")

TARGET_LABELS: tuple[str, ...] = ("province", "unit_code", "unit", "service", "probe", "target")
PROBE_RESULTS: tuple[str, ...] = ("success", "failure", "internal_error")
RELOAD_RESULTS: tuple[str, ...] = ("success", "failure")

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


# -- what the renderer reads (structural: monitor.engine's classes satisfy these) ----------


class EntryView(Protocol):
    @property
    def target(self) -> Target: ...
    @property
    def status(self) -> Status: ...
    @property
    def last(self) -> ProbeResult | None: ...
    @property
    def last_at(self) -> datetime | None: ...


class StatsView(Protocol):
    @property
    def lateness_buckets(self) -> tuple[float, ...]: ...
    @property
    def lateness_counts(self) -> list[int]: ...
    @property
    def lateness_sum(self) -> float: ...
    @property
    def lateness_count(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def probes(self) -> Counter[tuple[str, str]]: ...
    @property
    def reasons(self) -> Counter[tuple[str, str]]: ...
    @property
    def reloads(self) -> Counter[str]: ...
    @property
    def last_reload_success(self) -> float: ...
    @property
    def store_errors(self) -> int: ...


class EngineView(Protocol):
    @property
    def entries(self) -> Mapping[str, EntryView]: ...
    @property
    def stats(self) -> StatsView: ...


@dataclass(slots=True, frozen=True)
class StatsSnapshot:
    lateness_buckets: tuple[float, ...]
    lateness_counts: tuple[int, ...]
    lateness_sum: float
    lateness_count: int
    in_flight: int
    probes: dict[tuple[str, str], int]
    reasons: dict[tuple[str, str], int]
    reloads: dict[str, int]
    last_reload_success: float
    store_errors: int


@dataclass(slots=True, frozen=True)
class Snapshot:
    """What one render reads, taken on the event loop (cheap: references and small copies).

    ``entries`` holds the live Entry objects; the loop may replace an entry's
    ``last``/``status`` while the thread renders, which changes at most which of two
    consecutive results of that one target is shown.
    """

    entries: Mapping[str, EntryView]
    values: tuple[EntryView, ...]
    stats: StatsSnapshot
    placement: Placement = Placement()


def snapshot(engine: EngineView) -> Snapshot:
    """Call on the event loop: copies what the loop mutates in place (the counters)."""
    st = engine.stats
    entries = engine.entries
    return Snapshot(
        entries,
        tuple(entries.values()),
        StatsSnapshot(
            tuple(st.lateness_buckets),
            tuple(st.lateness_counts),
            st.lateness_sum,
            st.lateness_count,
            st.in_flight,
            dict(st.probes),
            dict(st.reasons),
            dict(st.reloads),
            st.last_reload_success,
            st.store_errors,
        ),
        # Not part of EngineView: a view without one is a single, whole instance.
        getattr(engine, "placement", None) or Placement(),
    )


# -- text format primitives ------------------------------------------------------------


def escape_label(value: str) -> str:
    """Label value escaping of the text format: backslash, double quote, newline."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


_SPECIAL = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}


def fmt(value: float) -> str:
    """A sample value the way Go's exporters write it: 1 not 1.0, NaN, +Inf, -Inf."""
    v = float(value)
    if v.is_integer():
        return str(int(v)) if -1e15 < v < 1e15 else repr(v)
    r = repr(v)
    return _SPECIAL.get(r, r)


def wire(text: str) -> str:
    """``text`` as its UTF-8 bytes, one char per byte (a Latin-1 string).

    The /metrics body is built from such strings: CPython then keeps every piece
    one byte per character (Vietnamese unit names would otherwise make each line
    two bytes per character), and the final ``encode("latin-1")`` is a plain copy
    that yields exactly the UTF-8 text. Half the memory, about twice as fast.
    """
    return text if text.isascii() else text.encode().decode("latin-1")


def _wl(value: str) -> str:
    return wire(escape_label(value))


def labels_text(pairs: Iterable[tuple[str, str]]) -> str:
    """'a="x",b="y"' (no braces)."""
    return ",".join(f'{k}="{escape_label(v)}"' for k, v in pairs)


def family_header(name: str) -> str:
    typ, help_ = describe(name)
    return f"# HELP {name} {escape_help(help_)}\n# TYPE {name} {typ}\n"


def describe(name: str) -> tuple[str, str]:
    known = METRICS.get(name)
    if known is not None:
        return known
    return FALLBACK_WARDWATCH if name.startswith("wardwatch_") else FALLBACK_PROBE


def write_families(
    families: Mapping[str, Sequence[str]], parts: list[str], header: Callable[[str], str] = family_header
) -> None:
    """Append each family (header + its sample lines) in table order, then unknown names sorted."""
    known = [n for n in METRICS if n in families]
    extra = sorted(n for n in families if n not in METRICS)
    for name in known + extra:
        lines = families[name]
        if not lines:
            continue
        parts.append(header(name))
        parts.append("\n".join(lines))
        parts.append("\n")


def render_samples(samples: Iterable[Sample]) -> str:
    """The text exposition of one probe's samples, without target labels (the /probe answer)."""
    families: dict[str, list[str]] = defaultdict(list)
    for s in samples:
        if not _NAME_RE.match(s.name):
            continue
        own = [(k, v) for k, v in s.labels if _LABEL_RE.match(k)]
        lbl = "{" + labels_text(own) + "}" if own else ""
        families[s.name].append(f"{s.name}{lbl} {fmt(s.value)}")
    parts: list[str] = []
    write_families(families, parts)
    return "".join(parts)


def _ts(at: datetime | None) -> float | None:
    return at.timestamp() if at is not None else None


class _Discard(list[str]):
    """Where samples with an invalid metric name go: never written."""

    def append(self, _line: str) -> None:
        pass


# -- the /metrics renderer -----------------------------------------------------------------


class MetricsRenderer:
    """Renders snapshots; keeps per-target label text between renders (targets rarely change).

    One render at a time (a lock): the web layer coalesces concurrent scrapes anyway.
    """

    def __init__(self, *, process_metrics: bool = True) -> None:
        self._lock = threading.Lock()
        self._entries_ref: object = None
        self._prefix: dict[int, tuple[Target, str]] = {}
        self._own: dict[tuple[tuple[str, str], ...], str] = {}
        self._values: dict[float, str] = {}
        self.last_render_seconds = 0.0
        self._process: CollectorRegistry | None = None
        if process_metrics:
            self._process = CollectorRegistry(auto_describe=False)
            ProcessCollector(registry=self._process)
            PlatformCollector(registry=self._process)
            GCCollector(registry=self._process)

    def _target_prefix(self, t: Target) -> str:
        hit = self._prefix.get(id(t))
        if hit is not None and hit[0] is t:
            return hit[1]
        p = wire(
            labels_text(
                (
                    ("province", str(t.province)),
                    ("unit_code", str(t.unit_code)),
                    ("unit", t.unit_name),
                    ("service", t.service),
                    ("probe", t.probe),
                    ("target", t.target),
                )
            )
        )
        self._prefix[id(t)] = (t, p)
        return p

    def _own_labels(self, labels: tuple[tuple[str, str], ...]) -> str:
        text = self._own.get(labels)
        if text is None:
            if len(self._own) > 200_000:
                self._own.clear()
            pairs = []
            for k, v in labels:
                if not _LABEL_RE.match(k):
                    continue
                # A probe label may not shadow a target label: Prometheus' own rule.
                pairs.append((f"exported_{k}" if k in TARGET_LABELS else k, v))
            text = ("," + wire(labels_text(pairs))) if pairs else ""
            self._own[labels] = text
        return text

    def render(self, snap: Snapshot) -> bytes:
        """The whole exposition as UTF-8 text. Synchronous: call it in a worker thread."""
        with self._lock:
            start = time.perf_counter()
            body = self._render(snap)
            self.last_render_seconds = time.perf_counter() - start
            return body

    def _render(self, snap: Snapshot) -> bytes:
        if snap.entries is not self._entries_ref:
            # A reload replaced the entries: drop label text of targets that went away.
            live = {id(e.target) for e in snap.values}
            self._prefix = {k: v for k, v in self._prefix.items() if k in live}
            self._entries_ref = snap.entries
        if len(self._values) > 100_000:
            self._values.clear()
        # The hot loop (~600k lines at 33k targets): plain dict lookups, no per-sample calls
        # unless a value, a label set or a metric name is seen for the first time.
        fam: dict[str, list[str]] = {}
        success = fam["probe_success"] = []
        duration = fam["probe_duration_seconds"] = []
        timeout = fam["probe_timeout_seconds"] = []
        state_lines = fam["wardwatch_target_state"] = []
        change_lines = fam["wardwatch_target_last_change_timestamp_seconds"] = []
        probe_at_lines = fam["wardwatch_target_last_probe_timestamp_seconds"] = []
        reason_lines = fam["wardwatch_target_failure_reason_info"] = []
        counts: Counter[tuple[str, str]] = Counter()
        prefix_of = self._target_prefix
        own_get = self._own.get
        own_of = self._own_labels
        fam_get = fam.get
        vals = self._values
        val_get = vals.get
        state_value = {s: str(v) for s, v in STATE_VALUE.items()}
        down = State.DOWN
        for e in snap.values:
            t = e.target
            status = e.status
            last = e.last
            last_at = e.last_at
            p = prefix_of(t)
            counts[(t.service, status.state.value)] += 1
            state_lines.append(f"wardwatch_target_state{{{p}}} {state_value[status.state]}")
            if status.since is not None:
                change_lines.append(
                    f"wardwatch_target_last_change_timestamp_seconds{{{p}}} {fmt(status.since.timestamp())}"
                )
            if last_at is not None:
                probe_at_lines.append(
                    f"wardwatch_target_last_probe_timestamp_seconds{{{p}}} {fmt(last_at.timestamp())}"
                )
            if status.state is down and status.reason is not None:
                reason_lines.append(
                    f'wardwatch_target_failure_reason_info{{{p},reason="{status.reason.value}"}} 1'
                )
            if last is None:
                continue
            # What runner.common_samples adds, written directly (no Sample objects).
            success.append(f"probe_success{{{p}}} {1 if last.success else 0}")
            duration.append(f"probe_duration_seconds{{{p}}} {fmt(last.duration_seconds)}")
            timeout.append(f"probe_timeout_seconds{{{p}}} {fmt(t.timeout)}")
            for s in last.samples:
                name = s.name
                lines = fam_get(name)
                if lines is None:
                    lines = fam[name] = [] if _NAME_RE.match(name) else _Discard()
                labels = s.labels
                if labels:
                    own = own_get(labels)
                    if own is None:
                        own = own_of(labels)
                else:
                    own = ""
                v = s.value
                val = val_get(v)
                if val is None:
                    val = fmt(v)
                    if len(val) < 12:  # codes, counts, flags, whole timestamps: worth keeping
                        vals[v] = val
                lines.append(f"{name}{{{p}{own}}} {val}")

        self._self_metrics(fam, snap.stats, counts)
        pl = snap.placement
        fam["wardwatch_instance_info"] = [
            f'wardwatch_instance_info{{replicas="{pl.replicas}",shard="{pl.shard}",vantage="{_wl(pl.vantage)}"}} 1'
        ]
        parts: list[str] = []
        write_families(fam, parts, lambda name: wire(family_header(name)))
        if self._process is not None:
            parts.append(generate_latest(self._process).decode("latin-1"))  # already UTF-8
        return "".join(parts).encode("latin-1")

    def _self_metrics(
        self, fam: dict[str, list[str]], st: StatsSnapshot, counts: Counter[tuple[str, str]]
    ) -> None:
        # Lateness histogram: engine counts are per bucket; the format wants them cumulative.
        name = "wardwatch_schedule_lateness_seconds"
        bounds = list(st.lateness_buckets)
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        lines: list[str] = []
        fam[name] = lines
        cum = 0
        for i, le in enumerate(bounds):
            cum += st.lateness_counts[i] if i < len(st.lateness_counts) else 0
            lines.append(f'{name}_bucket{{le="{fmt(le)}"}} {cum}')
        lines.append(f"{name}_sum {fmt(st.lateness_sum)}")
        lines.append(f"{name}_count {st.lateness_count}")

        fam["wardwatch_probes_in_flight"] = [f"wardwatch_probes_in_flight {st.in_flight}"]

        probes = dict.fromkeys(((k, r) for k in KINDS for r in PROBE_RESULTS), 0)
        probes.update(st.probes)
        fam["wardwatch_probes_total"] = [
            f'wardwatch_probes_total{{probe="{_wl(k)}",result="{_wl(r)}"}} {n}'
            for (k, r), n in sorted(probes.items())
        ]
        fam["wardwatch_probe_failures_total"] = [
            f'wardwatch_probe_failures_total{{probe="{_wl(k)}",reason="{_wl(r)}"}} {n}'
            for (k, r), n in sorted(st.reasons.items())
        ]
        reloads = dict.fromkeys(RELOAD_RESULTS, 0)
        reloads.update(st.reloads)
        fam["wardwatch_inventory_reloads_total"] = [
            f'wardwatch_inventory_reloads_total{{result="{_wl(r)}"}} {n}' for r, n in sorted(reloads.items())
        ]
        fam["wardwatch_inventory_last_reload_success_timestamp_seconds"] = [
            f"wardwatch_inventory_last_reload_success_timestamp_seconds {fmt(st.last_reload_success)}"
        ]
        fam["wardwatch_store_errors_total"] = [f"wardwatch_store_errors_total {st.store_errors}"]

        services = sorted(set(SERVICES) | {s for s, _ in counts})
        fam["wardwatch_targets"] = [
            f'wardwatch_targets{{service="{_wl(svc)}",state="{state.value}"}} '
            f"{counts.get((svc, state.value), 0)}"
            for svc in services
            for state in State
        ]
        fam["wardwatch_metrics_render_seconds"] = [
            f"wardwatch_metrics_render_seconds {fmt(self.last_render_seconds)}"
        ]
        fam["wardwatch_build_info"] = [f'wardwatch_build_info{{version="{_wl(__version__)}"}} 1']

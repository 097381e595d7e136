"""The /metrics renderer: exact text for a few targets, promtool's verdict, and scale."""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.engine import EngineStats, Entry
from monitor.exporter import (
    METRICS,
    MetricsRenderer,
    escape_label,
    fmt,
    render_samples,
    snapshot,
)
from monitor.placement import Placement
from monitor.state import STATE_VALUE, State, Status
from monitor.targets import Target
from probes.base import ProbeConfig, ProbeResult, Reason, Sample
from probes.runner import common_samples
from tests.peers.promtool import check_metrics

NOW = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
CFG = ProbeConfig()


class FakeEngine:
    """Holds real Entry/EngineStats objects: the data the renderer reads, nothing more."""

    def __init__(self, entries: list[Entry], stats: EngineStats | None = None) -> None:
        self.entries = {e.target.key: e for e in entries}
        self.stats = stats or EngineStats()


def http_result(ok: bool = True, code: int = 200) -> ProbeResult:
    return ProbeResult(
        ok,
        None if ok else Reason.HTTP_STATUS,
        "" if ok else f"status {code}",
        0.25,
        (
            Sample("probe_dns_lookup_time_seconds", 0.0),
            Sample("probe_ip_protocol", 4.0),
            Sample("probe_http_status_code", float(code)),
            Sample("probe_http_duration_seconds", 0.001, (("phase", "connect"),)),
            Sample("probe_http_duration_seconds", 0.002, (("phase", "processing"),)),
            Sample("probe_http_version", 1.1),
            Sample("probe_ssl_earliest_cert_expiry", 1_800_000_000.0),
            Sample("probe_tls_version_info", 1.0, (("version", "TLS 1.3"),)),
            Sample("wardwatch_http_new_thing", 3.0),  # not in the table: generic family
            Sample("bad name!", 1.0),  # invalid: dropped, not a broken exposition
        ),
    )


def sample_entries() -> list[Entry]:
    up = Target(1, 4, "Phường Ba Đình", "portal", "http", "https://127.0.0.1:8443/", CFG, timeout=5.0)
    down = Target(1, 8, 'Xã "Quote" \\ back\nline', "portal", "http", "http://127.0.0.1:1/", CFG)
    unknown = Target(1, 25, "Phường Giảng Võ", "link", "icmp", "127.0.0.2", CFG)
    return [
        Entry(up, Status(State.UP, NOW - timedelta(hours=1)), http_result(), NOW, 1),
        Entry(
            down,
            Status(State.DOWN, NOW - timedelta(minutes=5), Reason.HTTP_STATUS, "status 503", 3),
            http_result(False, 503),
            NOW,
            2,
        ),
        Entry(unknown),
    ]


def sample_stats() -> EngineStats:
    st = EngineStats()
    for s in (0.001, 0.001, 0.02, 0.3, 20.0):
        st.observe_lateness(s)
    st.in_flight = 7
    st.probes[("http", "success")] = 10
    st.probes[("http", "failure")] = 4
    st.reasons[("http", "http_status")] = 4
    st.reloads["success"] = 2
    st.last_reload_success = 1_763_625_600.5
    st.store_errors = 1
    return st


def render(engine: FakeEngine, process: bool = False) -> str:
    return MetricsRenderer(process_metrics=process).render(snapshot(engine)).decode()


def families_in_order(text: str) -> list[str]:
    """Family of every sample line in order of appearance."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        assert name is not None, line
        n = name.group(0)
        out.append(re.sub(r"_(bucket|sum|count)$", "", n) if n.startswith("wardwatch_schedule") else n)
    return out


def test_fmt_like_go() -> None:
    assert fmt(1.0) == "1"
    assert fmt(200) == "200"
    assert fmt(-1.0) == "-1"
    assert fmt(0.25) == "0.25"
    assert fmt(1.1) == "1.1"
    assert fmt(math.nan) == "NaN"
    assert fmt(math.inf) == "+Inf"
    assert fmt(-math.inf) == "-Inf"
    assert fmt(1e300) == "1e+300"


def test_escape_label() -> None:
    assert escape_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert escape_label("Phường") == "Phường"


def test_per_target_series_and_labels() -> None:
    text = render(FakeEngine(sample_entries(), sample_stats()))
    lbl_up = (
        'province="1",unit_code="4",unit="Phường Ba Đình",service="portal",probe="http",'
        'target="https://127.0.0.1:8443/"'
    )
    assert f"probe_success{{{lbl_up}}} 1\n" in text
    assert f"probe_duration_seconds{{{lbl_up}}} 0.25\n" in text
    assert f"probe_timeout_seconds{{{lbl_up}}} 5\n" in text
    assert f"probe_http_status_code{{{lbl_up}}} 200\n" in text
    assert f'probe_http_duration_seconds{{{lbl_up},phase="connect"}} 0.001\n' in text
    assert f"probe_ssl_earliest_cert_expiry{{{lbl_up}}} 1800000000\n" in text
    assert f'probe_tls_version_info{{{lbl_up},version="TLS 1.3"}} 1\n' in text
    assert f"wardwatch_target_state{{{lbl_up}}} 1\n" in text
    since = (NOW - timedelta(hours=1)).timestamp()
    assert f"wardwatch_target_last_change_timestamp_seconds{{{lbl_up}}} {fmt(since)}\n" in text
    assert f"wardwatch_target_last_probe_timestamp_seconds{{{lbl_up}}} {fmt(NOW.timestamp())}\n" in text

    # Escaped label values: quote, backslash and newline.
    lbl_down = (
        'province="1",unit_code="8",unit="Xã \\"Quote\\" \\\\ back\\nline",service="portal",'
        'probe="http",target="http://127.0.0.1:1/"'
    )
    assert f"wardwatch_target_state{{{lbl_down}}} 0\n" in text
    assert f"probe_success{{{lbl_down}}} 0\n" in text
    assert f'wardwatch_target_failure_reason_info{{{lbl_down},reason="http_status"}} 1\n' in text
    assert text.count("wardwatch_target_failure_reason_info{") == 1  # only while down

    # A target never probed: its state (unknown) and nothing else.
    assert re.search(r'wardwatch_target_state\{[^}]*unit_code="25"[^}]*\} -1\n', text)
    assert not re.search(r'probe_success\{[^}]*unit_code="25"', text)

    # Unknown wardwatch_* name: generic family; invalid name: dropped.
    assert "# TYPE wardwatch_http_new_thing gauge\n" in text
    assert "# HELP wardwatch_http_new_thing wardwatch probe observation\n" in text
    assert "bad name" not in text

    # Round trip through prometheus_client's parser: the escaped values come back intact.
    units = {
        s.labels["unit"]
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if fam.name == "wardwatch_target_state"
    }
    assert units == {"Phường Ba Đình", 'Xã "Quote" \\ back\nline', "Phường Giảng Võ"}


def test_state_values_follow_state_value_table() -> None:
    text = render(FakeEngine(sample_entries()))
    values = sorted(
        s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "wardwatch_target_state"
        for s in fam.samples
    )
    assert values == sorted(float(STATE_VALUE[s]) for s in (State.UP, State.DOWN, State.UNKNOWN))


def test_common_samples_match_runner() -> None:
    """The renderer writes runner.common_samples' series inline (speed): they must stay the same."""
    e = sample_entries()[0]
    assert e.last is not None
    text = render(FakeEngine([e]))
    for s in common_samples(e.last, e.target.timeout):
        assert re.search(rf"^{s.name}\{{[^}}]*\}} {re.escape(fmt(s.value))}$", text, re.M), s


def test_families_grouped_once_with_help_and_type() -> None:
    text = render(FakeEngine(sample_entries(), sample_stats()), process=True)
    types = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M)
    helps = re.findall(r"^# HELP (\S+) ", text, re.M)
    names = [n for n, _ in types]
    assert len(names) == len(set(names))
    assert names == helps
    seen: list[str] = []
    for fam in families_in_order(text):
        if not seen or seen[-1] != fam:
            assert fam not in seen, f"{fam} samples are split"
            seen.append(fam)
    declared = [n for n in names if not n.startswith(("process_", "python_"))]
    assert [n for n in seen if not n.startswith(("process_", "python_"))] == declared
    for name, typ in types:
        if name in METRICS:
            assert typ == METRICS[name][0]
    assert "process_resident_memory_bytes" in text or "python_info" in text


def test_self_metrics() -> None:
    text = render(FakeEngine(sample_entries(), sample_stats()))
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    hist = fams["wardwatch_schedule_lateness_seconds"]
    assert hist.type == "histogram"
    buckets = [(s.labels["le"], s.value) for s in hist.samples if s.name.endswith("_bucket")]
    assert buckets[-1] == ("+Inf", 5.0)
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "buckets must be cumulative"
    le = dict(buckets)
    assert le["0.005"] == 2.0 and le["0.025"] == 3.0 and le["0.5"] == 4.0 and le["10"] == 4.0
    total = {s.name: s.value for s in hist.samples if not s.name.endswith("_bucket")}
    assert total["wardwatch_schedule_lateness_seconds_count"] == 5.0
    assert total["wardwatch_schedule_lateness_seconds_sum"] == pytest.approx(20.322)

    assert "wardwatch_probes_in_flight 7\n" in text
    assert 'wardwatch_probes_total{probe="http",result="success"} 10\n' in text
    assert 'wardwatch_probes_total{probe="dns",result="internal_error"} 0\n' in text  # pre-created
    assert 'wardwatch_probe_failures_total{probe="http",reason="http_status"} 4\n' in text
    assert 'wardwatch_inventory_reloads_total{result="failure"} 0\n' in text
    assert 'wardwatch_inventory_reloads_total{result="success"} 2\n' in text
    assert "wardwatch_inventory_last_reload_success_timestamp_seconds 1763625600.5\n" in text
    assert "wardwatch_store_errors_total 1\n" in text
    assert 'wardwatch_targets{service="portal",state="up"} 1\n' in text
    assert 'wardwatch_targets{service="portal",state="down"} 1\n' in text
    assert 'wardwatch_targets{service="link",state="unknown"} 1\n' in text
    assert 'wardwatch_targets{service="email",state="up"} 0\n' in text
    assert re.search(r'^wardwatch_build_info\{version="[^"]+"\} 1$', text, re.M)
    # A view without a placement is one whole instance.
    assert 'wardwatch_instance_info{replicas="1",shard="1/1",vantage=""} 1\n' in text


def test_instance_info_says_where_and_which_share() -> None:
    engine = FakeEngine(sample_entries(), sample_stats())
    engine.placement = Placement(2, 3, 2, "hcm-dc2")  # type: ignore[attr-defined]
    text = render(engine)
    assert 'wardwatch_instance_info{replicas="2",shard="2/3",vantage="hcm-dc2"} 1\n' in text
    assert "# TYPE wardwatch_instance_info gauge\n" in text


def test_probe_label_cannot_shadow_target_label() -> None:
    t = Target(1, 4, "U", "certs", "tls", "127.0.0.1:443", CFG)
    r = ProbeResult(True, None, "", 0.1, (Sample("probe_ssl_last_chain_info", 1, (("target", "x"),)),))
    text = render(FakeEngine([Entry(t, Status(State.UP, NOW), r, NOW)]))
    assert 'target="127.0.0.1:443",exported_target="x"} 1' in text


def test_promtool_accepts_metrics() -> None:
    code, out = check_metrics(render(FakeEngine(sample_entries(), sample_stats()), process=True))
    assert code == 0 and out == "", out


def test_promtool_accepts_probe_answer() -> None:
    e = sample_entries()[1]
    assert e.last is not None
    text = render_samples((*e.last.samples, *common_samples(e.last, 9.5)))
    assert "probe_success 0\n" in text
    assert 'probe_http_duration_seconds{phase="connect"} 0.001\n' in text
    assert "province=" not in text
    code, out = check_metrics(text)
    assert code == 0 and out == "", out


def synthetic_engine(n: int) -> FakeEngine:
    services = ("link", "vc_gov", "vc_party", "portal", "email", "certs", "procedures")
    entries = []
    for i in range(n):
        t = Target(
            1,
            10_000 + i // 7,
            f"Xã Đông Sơn {i // 7}",
            services[i % 7],
            "http",
            f"https://portal-{i}.xa-dong-son.gov.vn/",
            CFG,
        )
        ok = i % 10 != 0
        r = ProbeResult(
            ok,
            None if ok else Reason.TIMEOUT,
            "",
            0.1 + i * 1e-7,
            (
                Sample("probe_dns_lookup_time_seconds", 0.001 + i * 1e-9),
                Sample("probe_ip_protocol", 4.0),
                Sample("probe_http_status_code", 200.0),
                *(
                    Sample("probe_http_duration_seconds", 0.01 * k + i * 1e-9, (("phase", p),))
                    for k, p in enumerate(("resolve", "connect", "tls", "processing", "transfer"))
                ),
                Sample("probe_http_redirects", 0.0),
                Sample("probe_http_ssl", 1.0),
                Sample("probe_http_version", 1.1),
                Sample("probe_http_content_length", 5120.0),
                Sample("probe_http_uncompressed_body_length", 5120.0),
                Sample("probe_failed_due_to_regex", 0.0),
                Sample("probe_ssl_earliest_cert_expiry", 1_800_000_000.0 + i),
                Sample("probe_ssl_last_chain_expiry_timestamp_seconds", 1_800_000_000.0 + i),
            ),
        )
        status = Status(State.UP, NOW) if ok else Status(State.DOWN, NOW, Reason.TIMEOUT, "timeout", 3)
        entries.append(Entry(t, status, r, NOW, 1))
    return FakeEngine(entries, sample_stats())


def test_render_33210_targets() -> None:
    engine = synthetic_engine(33_210)
    renderer = MetricsRenderer()
    timings = []
    body = b""
    for _ in range(3):
        start = time.perf_counter()
        body = renderer.render(snapshot(engine))
        timings.append(time.perf_counter() - start)
    lines = body.count(b"\n")
    print(
        f"\n/metrics for 33,210 targets: {lines:,} lines, {len(body) / 1e6:.1f} MB, "
        f"render {', '.join(f'{t:.2f}s' for t in timings)} (first, warm, warm)"
    )
    assert lines > 33_210 * 20
    assert body.count(b"# TYPE probe_success gauge\n") == 1
    # Sanity bound only (shared CI machines vary): the figure above is what gets reported.
    assert min(timings) < 10.0

"""Message texts: values substituted into ``{{key}}`` placeholders, nothing else.

There is no template language here on purpose: a placeholder is a name from the fixed set
``TEMPLATE_KEYS``, replaced by its value in one pass (a value is never looked at again, so a
unit name or label ``{{7*7}}`` renders literally); anything else between braces stays as
written. No attribute access, no format specs, no code, file or environment access.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from alerts.model import AlertKind, Event, Notification

TEMPLATE_KEYS: tuple[str, ...] = (
    "alert_id", "kind", "kind_text", "event", "event_text", "severity", "unit", "unit_code", "service",
    "probe", "target", "reason", "reason_text", "message", "since", "since_utc", "duration", "ended",
    "link", "children", "tier", "maintenance",
)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(template: str) -> list[str]:
    return [m.group(1) for m in _PLACEHOLDER.finditer(template)]


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Replace each ``{{key}}`` of a known key by its value, in one pass; leave the rest."""

    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in TEMPLATE_KEYS and name in values:
            return values[name]
        return m.group(0)

    return _PLACEHOLDER.sub(one, template)


# -- phrases -------------------------------------------------------------------------------------

REASONS: dict[str, tuple[str, str]] = {  # reason -> (vi, en)
    "timeout": ("quá thời gian chờ", "timed out"),
    "refused": ("kết nối bị từ chối", "connection refused"),
    "unreachable": ("không tới được", "unreachable"),
    "connection_reset": ("kết nối bị ngắt", "connection reset"),
    "dns_nxdomain": ("tên miền không tồn tại", "domain does not exist"),
    "dns_servfail": ("máy chủ DNS lỗi", "DNS server failure"),
    "dns_no_answer": ("DNS không có bản ghi", "no DNS record"),
    "dns_timeout": ("DNS không trả lời", "DNS timed out"),
    "dns_rcode": ("DNS trả mã lỗi", "DNS error code"),
    "dns_answer_mismatch": ("DNS trả địa chỉ khác mong đợi", "unexpected DNS answer"),
    "dns_servers_disagree": ("các máy chủ DNS trả lời khác nhau", "DNS servers disagree"),
    "tls_expired": ("chứng thư số đã hết hạn", "certificate expired"),
    "tls_not_yet_valid": ("chứng thư số chưa có hiệu lực", "certificate not yet valid"),
    "tls_hostname_mismatch": ("chứng thư số không đúng tên máy chủ", "certificate name mismatch"),
    "tls_untrusted": ("chứng thư số không được tin cậy", "untrusted certificate"),
    "tls_handshake_failed": ("lỗi bắt tay TLS", "TLS handshake failed"),
    "tls_version": ("phiên bản TLS không đạt", "TLS version not accepted"),
    "tls_expires_soon": ("chứng thư số sắp hết hạn", "certificate expires soon"),
    "http_status": ("mã trạng thái HTTP lỗi", "bad HTTP status"),
    "http_protocol_error": ("lỗi giao thức HTTP", "HTTP protocol error"),
    "body_mismatch": ("nội dung trang không đúng", "unexpected page content"),
    "body_too_large": ("nội dung trang quá lớn", "page too large"),
    "redirect_missing": ("tên miền cũ không chuyển hướng", "old domain does not redirect"),
    "redirect_mismatch": ("tên miền cũ chuyển hướng sai địa chỉ", "old domain redirects elsewhere"),
    "too_many_redirects": ("chuyển hướng quá nhiều lần", "too many redirects"),
    "expect_mismatch": ("máy chủ trả lời không như mong đợi", "unexpected answer"),
    "starttls_unsupported": ("máy chủ thư không hỗ trợ STARTTLS", "mail server lacks STARTTLS"),
    "packet_loss": ("mất gói tin", "packet loss"),
    "permission_denied": ("không đủ quyền thực hiện kiểm tra", "permission denied"),
    "address_denied": ("địa chỉ bị chặn theo chính sách giám sát", "address denied by policy"),
    "cert_expired": ("chứng thư số đã hết hạn", "certificate expired"),
    "cert_expires_soon": ("chứng thư số sắp hết hạn", "certificate expires soon"),
    "cert_unreadable": ("không đọc được tệp chứng thư", "certificate file unreadable"),
    "cert_bad_password": ("sai mật khẩu tệp chứng thư", "wrong certificate file password"),
    "file_not_found": ("không tìm thấy tệp", "file not found"),
    "snmp_timeout": ("SNMP không trả lời", "SNMP timed out"),
    "snmp_auth_error": ("lỗi xác thực SNMP", "SNMP authentication error"),
    "snmp_no_such_object": ("không có đối tượng SNMP", "no such SNMP object"),
    "snmp_interface_down": ("cổng mạng bị ngắt", "interface down"),
    "snmp_credentials_unavailable": ("thiếu thông tin xác thực SNMP", "SNMP credentials missing"),
    "snmp_error": ("lỗi SNMP", "SNMP error"),
    "sip_status": ("máy chủ SIP trả mã lỗi", "SIP error status"),
    "sip_no_response": ("máy chủ SIP không trả lời", "no SIP response"),
    "sip_protocol_error": ("lỗi giao thức SIP", "SIP protocol error"),
    "stun_error": ("máy chủ STUN trả lỗi", "STUN error"),
    "stun_no_response": ("máy chủ STUN không trả lời", "no STUN response"),
    "stun_protocol_error": ("lỗi giao thức STUN", "STUN protocol error"),
    "smtp_banner": ("máy chủ thư chào sai", "unexpected SMTP banner"),
    "smtp_ehlo_refused": ("máy chủ thư từ chối EHLO", "SMTP EHLO refused"),
    "email_no_mx": ("tên miền thư không có bản ghi MX", "mail domain has no MX record"),
    "internal_error": ("lỗi nội bộ của hệ thống giám sát", "monitor internal error"),
}

KINDS: dict[AlertKind, tuple[str, str]] = {
    AlertKind.TARGET_DOWN: ("Mất kết nối dịch vụ", "Service down"),
    AlertKind.LINK_DEGRADED: ("Đường truyền suy giảm", "Link degraded"),
    AlertKind.SNMP_INTERFACE_DOWN: ("Cổng mạng bị ngắt", "Interface down"),
    AlertKind.SNMP_REBOOT: ("Thiết bị khởi động lại", "Device rebooted"),
    AlertKind.CERT_EXPIRING: ("Chứng thư số sắp hết hạn", "Certificate expiring"),
    AlertKind.CERT_EXPIRED: ("Chứng thư số đã hết hạn", "Certificate expired"),
    AlertKind.REDIRECT_BROKEN: ("Tên miền cũ không chuyển hướng đúng", "Old domain redirect broken"),
    AlertKind.UNIT_ISOLATED: ("Đơn vị mất kết nối", "Unit isolated"),
    AlertKind.FLAPPING: ("Dịch vụ chập chờn", "Flapping"),
    AlertKind.MONITORING_DEGRADED: ("Hệ thống giám sát suy giảm", "Monitoring degraded"),
    AlertKind.STORAGE_DEGRADED: ("Lưu trữ của hệ thống giám sát gặp lỗi", "Monitoring storage degraded"),
}

SERVICES: dict[str, tuple[str, str]] = {
    "link": ("đường truyền", "link"),
    "vc_gov": ("phòng họp trực tuyến (chính quyền)", "video-conference room (government)"),
    "vc_party": ("phòng họp trực tuyến (Đảng)", "video-conference room (party)"),
    "portal": ("cổng thông tin", "portal"),
    "email": ("thư điện tử", "e-mail"),
    "certs": ("chứng thư số", "certificates"),
    "procedures": ("hệ thống thủ tục hành chính", "administrative procedures system"),
}

EVENTS: dict[Event, tuple[str, str]] = {
    Event.FIRING: ("CẢNH BÁO", "FIRING"),
    Event.RESOLVED: ("ĐÃ KHẮC PHỤC", "RESOLVED"),
}

DEFAULTS: dict[str, tuple[str, str]] = {  # template name -> (vi, en)
    "firing_title": ("[{{event_text}}] {{kind_text}}: {{unit}} ({{unit_code}}) {{service}}",
                     "[{{event_text}}] {{kind_text}}: {{unit}} ({{unit_code}}) {{service}}"),
    "resolved_title": ("[{{event_text}}] {{kind_text}}: {{unit}} ({{unit_code}}) {{service}}",
                       "[{{event_text}}] {{kind_text}}: {{unit}} ({{unit_code}}) {{service}}"),
    "firing_body": (
        "{{kind_text}}\nĐơn vị: {{unit}} (mã {{unit_code}})\nDịch vụ: {{service}}\nĐối tượng: {{target}}\n"
        "Nguyên nhân: {{reason_text}}\nTừ lúc: {{since}}\nĐã kéo dài: {{duration}}\n{{children}}"
        "{{maintenance}}Xem: {{link}}\nMã cảnh báo: {{alert_id}}",
        "{{kind_text}}\nUnit: {{unit}} (code {{unit_code}})\nService: {{service}}\nTarget: {{target}}\n"
        "Reason: {{reason_text}}\nSince: {{since}}\nFor: {{duration}}\n{{children}}"
        "{{maintenance}}See: {{link}}\nAlert id: {{alert_id}}",
    ),
    "resolved_body": (
        "{{kind_text}} đã khắc phục\nĐơn vị: {{unit}} (mã {{unit_code}})\nDịch vụ: {{service}}\n"
        "Đối tượng: {{target}}\nTừ lúc: {{since}}\nKết thúc: {{ended}}\nTổng thời gian: {{duration}}\n"
        "{{maintenance}}Xem: {{link}}\nMã cảnh báo: {{alert_id}}",
        "{{kind_text}} resolved\nUnit: {{unit}} (code {{unit_code}})\nService: {{service}}\n"
        "Target: {{target}}\nSince: {{since}}\nEnded: {{ended}}\nLasted: {{duration}}\n"
        "{{maintenance}}See: {{link}}\nAlert id: {{alert_id}}",
    ),
}


def _lang(language: str) -> int:
    return 1 if language == "en" else 0


def reason_text(reason: str, language: str = "vi") -> str:
    pair = REASONS.get(reason)
    return pair[_lang(language)] if pair else reason


def duration_text(seconds: float, language: str = "vi") -> str:
    s = max(0, int(seconds))
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    units = ("ngày", "giờ", "phút", "giây") if language != "en" else ("d", "h", "min", "s")
    parts = [f"{v} {u}" for v, u in zip((d, h, m, sec), units, strict=True) if v]
    return " ".join(parts[:2]) if parts else f"0 {units[3]}"


@dataclass(frozen=True, slots=True)
class Texts:
    language: str = "vi"
    timezone: str = "Asia/Ho_Chi_Minh"
    dashboard_url: str | None = None  # a template: {{unit_code}}, {{service}}...
    overrides: tuple[tuple[str, str], ...] = ()  # template name -> text

    def template(self, name: str) -> str:
        for key, text in self.overrides:
            if key == name:
                return text
        return DEFAULTS[name][_lang(self.language)]


def local_time(at: datetime, tz: str) -> str:
    return at.astimezone(ZoneInfo(tz)).strftime("%H:%M:%S %d/%m/%Y") + (" (UTC+7)" if tz == "Asia/Ho_Chi_Minh" else "")


def values(n: Notification, texts: Texts) -> dict[str, str]:
    """Every placeholder's value for one notification (plain strings, nothing evaluated)."""
    a = n.alert
    li = _lang(texts.language)
    end = n.ended_at if n.event is Event.RESOLVED and n.ended_at is not None else n.at
    lasted = (end - a.started_at) if end >= a.started_at else timedelta(0)
    service = SERVICES[a.service][li] if a.service in SERVICES else a.service
    base: dict[str, str] = {
        "alert_id": a.id,
        "kind": a.kind.value,
        "kind_text": KINDS.get(a.kind, (a.kind.value, a.kind.value))[li],
        "event": n.event.value,
        "event_text": EVENTS[n.event][li],
        "severity": a.severity,
        "unit": a.unit or "-",
        "unit_code": str(a.unit_code) if a.unit_code is not None else "-",
        "service": service or "-",
        "probe": a.probe,
        "target": a.target or "-",
        "reason": a.reason,
        "reason_text": reason_text(a.reason, texts.language) if a.reason else (a.message or "-"),
        "message": a.message,
        "since": local_time(a.started_at, texts.timezone),
        "since_utc": a.started_at.isoformat(),
        "duration": duration_text(lasted.total_seconds(), texts.language),
        "ended": local_time(end, texts.timezone),
        "tier": str(a.tier) if a.tier is not None else "",
        "children": "",
        "maintenance": "",
        "link": "",
    }
    if a.tier is not None and a.kind is AlertKind.CERT_EXPIRING:
        base["reason_text"] += f" (≤ {a.tier} ngày)" if li == 0 else f" (≤ {a.tier} days)"
    if a.children:
        if a.kind in (AlertKind.CERT_EXPIRING, AlertKind.CERT_EXPIRED):  # the endpoints serving it
            head = "Thấy tại: " if li == 0 else "Seen at: "
        else:
            head = "Không tới được: " if li == 0 else "Unreachable: "
        base["children"] = head + ", ".join(a.children) + "\n"
    if a.in_maintenance:
        base["maintenance"] = "(trong thời gian bảo trì)\n" if li == 0 else "(during maintenance)\n"
    if texts.dashboard_url:
        raw = {**base, "service": a.service}  # in a URL: the service's key, not its phrase
        quoted = {k: quote(v, safe="") for k, v in raw.items() if k != "link"}
        base["link"] = substitute(texts.dashboard_url, quoted)
    return base


def title(n: Notification, texts: Texts, vals: Mapping[str, str] | None = None) -> str:
    name = "firing_title" if n.event is Event.FIRING else "resolved_title"
    return substitute(texts.template(name), vals if vals is not None else values(n, texts))


def body(n: Notification, texts: Texts, vals: Mapping[str, str] | None = None) -> str:
    name = "firing_body" if n.event is Event.FIRING else "resolved_body"
    text = substitute(texts.template(name), vals if vals is not None else values(n, texts))
    return "\n".join(line for line in text.splitlines() if not line.endswith(": ")).strip()

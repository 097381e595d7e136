"""The inventory's alerting: and maintenance: sections: strict, with file:line problems."""

from __future__ import annotations

import pytest

from monitor.inventory import InventoryError, parse_inventory

BASE = """province: 79
units:
  - {code: 25747, name: Phường Thủ Dầu Một, type: phường, link: {address: 127.0.0.1}}
"""


def _parse(text: str) -> object:
    return parse_inventory(BASE + text, "inv.yaml", system_resolver="127.0.0.1:53")


def _problems(text: str) -> list[str]:
    with pytest.raises(InventoryError) as info:
        _parse(text)
    return [str(p) for p in info.value.problems]


def test_a_full_alerting_section_loads() -> None:
    inv = _parse("""alerting:
  language: en
  dashboard_url: "https://status.example.vn/{{unit_code}}"
  receivers:
    hook: {type: webhook, url: "https://hooks.example.vn/x", hmac_key_env: K}
    tg: {type: telegram, chat_id: 5, bot_token_file: /etc/wardwatch/tg}
    mail: {type: email, smarthost: "mail.example.vn:587", from: a@example.vn, to: [noc@example.vn]}
    am: {type: alertmanager, url: "http://127.0.0.1:9093"}
  routes:
    - {services: [link], receivers: [tg], continue: true}
  default_receivers: [hook]
  escalation: [{after: 15m, receiver: mail}]
  policy: {open_after: 4, cert_tiers: [30, 7]}
maintenance:
  - {unit_code: 25747, from: "2026-11-22T22:00:00+07:00", to: "2026-11-23T02:00:00+07:00", reason: x}
""")
    cfg = inv.alerting  # type: ignore[attr-defined]
    assert cfg.language == "en" and cfg.escalation[0].after == 900.0 and cfg.routes[0].continue_
    assert [w.unit_code for w in inv.maintenance] == [25747]  # type: ignore[attr-defined]
    from alerts.service import build_policy

    policy = build_policy(cfg)
    assert policy.open_after == 4 and policy.cert_tiers == (30, 7)
    assert policy.escalation == (("", 900.0), ("mail", 0.0))


def test_problems_name_line_and_field() -> None:
    assert _problems("""alerting:
  languag: en
  dashboard_url: "https://status.example/{{unitcode}}"
  receivers:
    hook: {type: webhok, url: "http://127.0.0.1:1/x"}
    tg: {type: telegram, chat_id: 5}
  policy: {open_afterr: 3}
maintenance:
  - {unit_code: 25747, from: "2026-11-22T22:00:00", to: "2026-11-23T02:00:00+07:00"}
  - {unit_code: 25747, service: dns, from: "2026-11-22T22:00:00+07:00", to: "2026-11-23T02:00:00+07:00"}
""") == [
        "inv.yaml:5: alerting.languag: unknown key",
        "inv.yaml:6: alerting.dashboard_url: unknown placeholder {{unitcode}} (known: alert_id, kind, kind_text, "
        "event, event_text, severity, unit, unit_code, service, probe, target, reason, reason_text, message, "
        "since, since_utc, duration, ended, link, children, tier, maintenance)",
        "inv.yaml:8: alerting.receivers.hook: type must be one of alertmanager, webhook, email, telegram",
        "inv.yaml:9: alerting.receivers.tg: give exactly one of bot_token_env, bot_token_file",
        "inv.yaml:12: maintenance[0].from: needs a UTC offset (e.g. 2026-11-22T22:00:00+07:00)",
        "inv.yaml:13: maintenance[1]: service must be one of link, vc_gov, vc_party, portal, email, certs, "
        "procedures, got 'dns'",
    ]


def test_undefined_receiver_and_unknown_policy_key() -> None:
    problems = _problems("""alerting:
  receivers: {hook: {type: webhook, url: "http://127.0.0.1:1/x"}}
  default_receivers: [nope]
""")
    assert problems == ["inv.yaml:4: alerting: receiver 'nope' is not defined (defined: hook)"]
    problems = _problems("""alerting:
  policy: {open_afterr: 3}
""")
    assert len(problems) == 1 and problems[0].startswith("inv.yaml:5: alerting.policy: open_afterr: unknown")
